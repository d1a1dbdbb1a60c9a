"""``fape gan ...``: train, synthesize."""
from __future__ import annotations

from fape.utils.cli import add_config_arg, add_group, lazy


def register(groups) -> None:
    sub = add_group(groups, "gan", help="train FaPE-GAN and synthesize faces in new poses",
                    description="FaPE-GAN: pose-conditioned face generation.")

    q = sub.add_parser("train", help="train (or resume) a FaPE-GAN run",
                       description="Train FaPE-GAN from a preset: fape gan train -c configs/gan/quick.yaml "
                                   "[--train.batch_size=8 ...]. Runs on CPU, one GPU, or many processes "
                                   "through `accelerate launch -m fape gan train ...`.")
    add_config_arg(q)
    q.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue RUN_DIR from its last checkpoint (its saved config; overrides still apply)")
    q.add_argument("--run-dir", default=None, help="exact run folder (default: next numbered folder in runs_dir)")
    q.set_defaults(handler=lazy("fape.gan.train", "cli_train"))

    q = sub.add_parser("synthesize", help="synthesize a balancing set with a trained generator",
                       description="Synthesize images for rare poses / expressions / identities; the output "
                                   "is a dataset in the fape format with provenance columns.")
    q.add_argument("--run", required=True, help="GAN run folder (or one of its checkpoint folders)")
    q.add_argument("--data", required=True, help="source dataset folder (fape format, with landmarks)")
    q.add_argument("--plan", required=True,
                   help="balance-pose | balance-expression[:max|median][:CLASS,CLASS...] | balance-identity | "
                        "PLAN.yaml; on a set with subject ids and one pose (CK+48, JAFFE) the expression is "
                        "transferred (landmarks retargeted from a donor pair of the --rows)")
    q.add_argument("--out", required=True, help="output dataset folder")
    q.add_argument("--rows", default=None, help="file of manifest row indices allowed as sources (e.g. a train split)")
    q.add_argument("--donor-rows", default=None, metavar="FILE",
                   help="file of manifest row indices that only give expression-transfer donor pairs (never "
                        "sources, never counted): e.g. the CK+48 and JAFFE rows of a merged set whose --rows "
                        "are FER2013's Training rows")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--batch-size", type=int, default=64)
    q.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    q.add_argument("--no-ema", action="store_true", help="use G instead of its EMA when both exist")
    q.add_argument("--gate", default="", metavar="SPEC",
                   help="quality gate: pose:MAX_NME[:detect|cropped] drops faces whose landmarks (dlib) are "
                        "farther than MAX_NME (inter-ocular) from the target pose; expression:RUN[:MIN_PROB] "
                        "drops faces that the classifier run RUN (trained on real rows only) does not read as "
                        "the drawn expression (its argmax, or its probability of it below MIN_PROB); join "
                        "gates with + to keep only faces every gate keeps; default: keep every face")
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(handler=lazy("fape.gan.synthesize", "cli_synthesize"))
