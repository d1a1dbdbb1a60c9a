"""``fape predict`` and ``fape export``."""
from __future__ import annotations

from fape.utils.cli import lazy


def register(groups) -> None:
    p = groups.add_parser(
        "predict", help="expression of every face in an image, folder, video or camera",
        description="fape predict SOURCE: SOURCE is an image, a folder of images, a video file or camera:N. Every "
                    "face is detected, cropped and scaled as the model's training images were (read from its "
                    "checkpoint) and classified in one batch per frame. Writes predictions.jsonl (a line per "
                    "frame: boxes, per-class probabilities, per-stage ms), annotated images or annotated.mp4, and "
                    "summary.json (median / p95 timings).")
    p.add_argument("source", help="image, folder, video, or camera:N")
    p.add_argument("--model", default=None,
                   help="run folder, checkpoint folder, .onnx or TorchScript .pt export (default: the shipped "
                        "fanet_fer2013_48, package data in fape/checkpoints/; or $FAPE_MODEL)")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx", "torchscript"],
                   help="auto: from the model file; on a run or checkpoint folder, ONNX Runtime (exported in memory) "
                        "when onnxruntime is installed and --device is cpu, else PyTorch")
    p.add_argument("--detector", default="haar", choices=["haar", "dlib", "mtcnn"])
    p.add_argument("--detect-scale", type=float, default=1.0,
                   help="detect on the frame resized by this factor (e.g. 0.5); boxes are mapped back")
    p.add_argument("--min-face", type=int, default=48, help="smallest face side in frame pixels")
    p.add_argument("--detect-every", type=int, default=1,
                   help="run the detector every N frames of a video and track faces in between")
    p.add_argument("--smooth", type=float, default=0.0,
                   help="per-face exponential smoothing of probabilities across video frames (0 = off)")
    p.add_argument("--out", default=None, help="output folder (default: next numbered folder in --runs-dir)")
    p.add_argument("--runs-dir", default="runs/predict")
    p.add_argument("--no-save", action="store_true", help="print the summary only, write nothing")
    p.add_argument("--no-annotate", action="store_true", help="skip annotated images / video")
    p.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0 = all)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for inference (0 = library default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=lazy("fape.predict.run", "cli_predict"))

    p = groups.add_parser(
        "export", help="export a classifier run to ONNX (float32 or int8) or TorchScript",
        description="fape export --run RUN --format onnx|torchscript [--out FILE]: the selected model with softmax, "
                    "batch dimension dynamic, and FILE.json with label order and preprocessing, so that "
                    "`fape predict --model FILE` needs nothing else.")
    p.add_argument("--run", required=True, help="run folder or checkpoint folder")
    p.add_argument("--format", required=True, choices=["onnx", "onnx-int8", "torchscript"],
                   help="onnx-int8: ONNX Runtime static quantisation calibrated on training images (--calibration)")
    p.add_argument("--out", default=None, help="output file (default: RUN/export/model[.int8].onnx or model.pt)")
    p.add_argument("--calibration", default=None, metavar="DATA",
                   help="onnx-int8: dataset folder whose training part (the model's split) calibrates activations")
    p.add_argument("--calibration-n", type=int, default=512, help="onnx-int8: calibration images")
    p.set_defaults(handler=lazy("fape.predict.backends", "cli_export"))
