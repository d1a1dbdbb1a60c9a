"""``fape data ...``: import, synth, landmarks, masks, show, cache, info, reindex."""
from __future__ import annotations

import argparse

from fape.utils.cli import add_config_arg, add_group, lazy


def register(groups) -> None:
    sub = add_group(groups, "data", help="build, import, inspect and preprocess datasets",
                    description="Datasets in the fape format: import, synthesise, landmarks, masks.")

    # ---- import
    from fape.data.adapters import ADAPTER_HELP
    from fape.data.format import MAX_PIXELS

    q = sub.add_parser("import", help="convert a public dataset layout into the fape format",
                       description="Convert a dataset into the fape format. Kinds:\n" + ADAPTER_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("kind", help="layout of SRC (see above)")
    q.add_argument("src", help="source folder or file")
    q.add_argument("--out", required=True, help="output dataset folder (written atomically)")
    q.add_argument("--image-size", type=int, default=None, help="resize every image to N x N pixels")
    q.add_argument("--gray", action="store_true", help="store single-channel images")
    q.add_argument("--crop", choices=["none", "haar", "dlib", "mtcnn"], default="none",
                   help="detect the face and crop it (default: keep the image as is)")
    q.add_argument("--eye-crop", action="store_true",
                   help="crop by eye distance (0.62/0.9/1.35 x e2e, cascaded fine-tuning paper); needs dlib")
    q.add_argument("--assume-cropped", action="store_true",
                   help="with --eye-crop: the images are face crops already (FER2013, CK+48), so the landmarks "
                        "are found in a fixed inset of each image instead of a detected box")
    q.add_argument("--ckplus-frames", choices=["last", "last3"], default="last3",
                   help="ckplus: which peak frames to keep per labelled sequence")
    q.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable images and record them in import_report.json instead of failing")
    q.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N",
                   help="images of more than N pixels (W x H) are bad inputs, refused before decoding "
                        "(decompression bombs; default %(default)s, PIL's limit)")
    q.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    q.add_argument("--limit", type=int, default=None, help="import at most N images (for quick tries)")
    q.set_defaults(handler=lazy("fape.data.adapters", "cli_import"))

    # ---- synth
    q = sub.add_parser("synth", help="render the synthetic multi-pose face set",
                       description="Render procedurally generated faces: identities x expressions x frames x "
                                   "4 poses, with ground-truth 68-point landmarks.")
    add_config_arg(q, default=None)
    q.add_argument("--out", default=None, help="output dataset folder (default: the config's out)")
    q.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    q.set_defaults(handler=lazy("fape.data.synth", "cli_synth"))

    # ---- landmarks
    q = sub.add_parser("landmarks", help="detect 68-point landmarks for every image of a dataset",
                       description="Detect 68 landmarks (dlib offline by default); resumable, batched.")
    q.add_argument("dir", help="dataset folder")
    q.add_argument("--backend", choices=["dlib", "face-alignment"], default="dlib")
    q.add_argument("--assume-cropped", action="store_true",
                   help="the image is the face box (FER2013, CK+48): skip detection")
    q.add_argument("--batch-size", type=int, default=256, help="images per checkpointed batch")
    q.add_argument("--upsample", type=int, default=1, help="dlib detector upsampling for small faces")
    q.add_argument("--device", default="cpu", help="face-alignment device")
    q.add_argument("--weights", default=None, help="face-alignment: path to the landmark model file")
    q.add_argument("--redo", action="store_true", help="ignore a previous partial run")
    q.set_defaults(handler=lazy("fape.data.landmarks", "cli_landmarks"))

    # ---- masks
    q = sub.add_parser("masks", help="write pose-mask previews of a dataset",
                       description="Render pose masks from the landmarks and write preview PNGs.")
    q.add_argument("dir", help="dataset folder")
    q.add_argument("--out", default=None, help="preview folder (default: DIR/previews/masks)")
    q.add_argument("--style", choices=["lines", "heatmaps"], default="lines")
    q.add_argument("--image-size", type=int, default=None, help="mask side in pixels (default: the images')")
    q.add_argument("-n", type=int, default=16, help="how many images")
    q.set_defaults(handler=lazy("fape.data.preview", "cli_masks"))

    # ---- show
    q = sub.add_parser("show", help="contact sheet of images with landmarks and masks",
                       description="Write a contact-sheet PNG: image | landmarks | pose mask per cell.")
    q.add_argument("dir", help="dataset folder")
    q.add_argument("--out", default=None, help="PNG path (default: DIR/previews/contact_sheet.png)")
    q.add_argument("-n", type=int, default=24, help="how many images")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--sources", action="store_true",
                   help="a synthesized set: rows of source | its landmarks | target landmarks | generated, with "
                        "the source's and the drawn expression (default PNG: DIR/previews/sources.png)")
    q.set_defaults(handler=lazy("fape.data.preview", "cli_show"))

    # ---- split
    q = sub.add_parser("split", help="write a train/val/test split file of a dataset (paper protocols)",
                       description="Write DIR/splits/<protocol>[-<options>]-seed<S>.csv (row,path,split[,fold]) "
                                   "and a JSON beside it; refuses subject/sequence leaks. Protocols: er-ss, er-ue, "
                                   "er-up, er-zid, fer2013-official, jaffe-deep-emotion, jaffe-loso, ckplus-10fold, "
                                   "leave-one-dataset-out (of a `fape data merge`), random, subject, gan-rows (a GAN's "
                                   "training rows and held-out subjects) "
                                   "(see fape/data/splits/).")
    q.add_argument("dir", help="dataset folder")
    q.add_argument("--protocol", required=True, help="split protocol (e.g. er-ss, jaffe-deep-emotion)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", default=None, help="csv path (default: DIR/splits/<name>.csv)")
    q.add_argument("--option", action="extend", nargs="+", default=[], metavar="K=V",
                   help="protocol option, e.g. rare_fraction=0.2, rare_pose=HL, classes=6, fractions=0.8,0.1,0.1, "
                        "leak_unit=sequence (er-ss, er-ue: every view of a sequence on one side)")
    q.set_defaults(handler=lazy("fape.data.splits.cli", "cli_split"))

    # ---- cache / info / reindex
    q = sub.add_parser("cache", help="decode all images once into a memory-mapped array",
                       description="Decode every image into DIR/cache/images_u8.npy so epochs read no files.")
    q.add_argument("dir", help="dataset folder")
    q.add_argument("--image-size", type=int, default=None, help="resize to N x N pixels while caching")
    q.set_defaults(handler=lazy("fape.data.dataset", "cli_cache"))

    q = sub.add_parser("info", help="print a dataset summary")
    q.add_argument("dir", help="dataset folder")
    q.set_defaults(handler=lazy("fape.data.dataset", "cli_info"))

    q = sub.add_parser("merge", help="several imported datasets as one (a 'dataset' column; for leave-one-dataset-out)",
                       description="fape data merge data/fer2013 data/ckplus48 data/jaffe --out data/fer_ck_jaffe: "
                                   "rows keep their split column and landmarks, subjects and sequences are prefixed "
                                   "with the source's name, expression names unified (anger -> angry, sadness -> sad); "
                                   "images hard-linked (else copied).")
    q.add_argument("datasets", nargs="+", metavar="[NAME=]DIR", help="imported dataset folders (NAME: default its name)")
    q.add_argument("--out", required=True)
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(handler=lazy("fape.data.merge", "cli_merge"))

    q = sub.add_parser("reindex", help="accept a hand-edited manifest.csv (re-validate, re-hash)")
    q.add_argument("dir", help="dataset folder")
    q.set_defaults(handler=lazy("fape.data.dataset", "cli_reindex"))

