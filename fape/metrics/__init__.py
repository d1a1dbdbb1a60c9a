"""Quality metrics of synthesised faces: FID / KID (Inception or a fape classifier's features),
paired L1 / PSNR / SSIM, LPIPS, pose accuracy (landmark NME), identity and expression preservation.

Heavy dependencies (pytorch-fid, lpips, kornia, dlib) are imported inside the functions that need them.
"""
