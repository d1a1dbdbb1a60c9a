"""The model registry of the recursive loop: ``DIR/models/registry.json`` lists every version
(the initial model is ``v0000``) with its card, and which one the game serves (``current``).
Each retrained version lives in ``DIR/models/vNNNN/`` (the training run, ``card.json`` and
``card.md``); nothing is ever deleted, so every promotion can be traced and undone."""
from __future__ import annotations

import json
import time
from pathlib import Path

from fape.utils.io import atomic_write_json, atomic_write_text

REGISTRY = "registry.json"


class Registry:
    def __init__(self, root: str | Path, initial_model: str | Path):
        self.root = Path(root)
        self.path = self.root / REGISTRY
        if not self.path.is_file():
            card = {"version": "v0000", "model": str(Path(initial_model).resolve()), "created": time.time(),
                    "promoted": True, "reason": "initial model", "parent": None, "heldout": None,
                    "reference": reference_accuracy(initial_model)}
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, {"current": "v0000", "versions": [card]})

    def read(self) -> dict:
        return json.loads(self.path.read_text())

    def mtime(self) -> float:
        return self.path.stat().st_mtime_ns

    def current(self) -> dict:
        reg = self.read()
        return next(v for v in reg["versions"] if v["version"] == reg["current"])

    def next_version(self) -> str:
        return f"v{len(self.read()['versions']):04d}"

    def version_dir(self, version: str) -> Path:
        return self.root / version

    def add(self, card: dict) -> None:
        """Record a version's card; make it current when ``card["promoted"]``."""
        reg = self.read()
        reg["versions"].append(card)
        if card["promoted"]:
            reg["current"] = card["version"]
        atomic_write_json(self.version_dir(card["version"]) / "card.json", card)
        atomic_write_text(self.version_dir(card["version"]) / "card.md", card_markdown(card))
        atomic_write_json(self.path, reg)


def reference_accuracy(model: str | Path) -> dict | None:
    """The test result a packaged model carries in its ``state.json`` (e.g. the shipped model's
    FER2013 PrivateTest accuracy), for the admin page until GaMo data has measured it."""
    from fape.classifiers.io import best_checkpoint
    from fape.utils import checkpoint as ck

    try:
        state = ck.load_state(best_checkpoint(model))
    except (FileNotFoundError, ValueError, KeyError):
        return None
    test = state.get("test") or {}
    if "accuracy" not in test:
        return None
    return {"accuracy": test["accuracy"], "n": test.get("n"), "split": test.get("split"),
            "data": state.get("config", {}).get("data", {}).get("root")}


def card_markdown(card: dict) -> str:
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    h, d, t = card.get("heldout") or {}, card.get("data") or {}, card.get("training") or {}
    lines = [f"# GaMo model {card['version']}", "",
             f"- parent: {card.get('parent')} (`{card.get('parent_model')}`)",
             f"- promoted: **{'yes' if card['promoted'] else 'no'}**: {card['reason']}",
             f"- held-out part ({h.get('unit')}s, fraction {h.get('fraction')}, {h.get('n')} images): accuracy "
             f"{pct(h.get('candidate'))} (macro-F1 {pct(h.get('candidate_macro_f1'))}), parent "
             f"{pct(h.get('parent'))} (macro-F1 {pct(h.get('parent_macro_f1'))})",
             f"- collected images: {d.get('collected')} (manifest sha256 `{str(d.get('manifest_sha256'))[:12]}`)"
             + (f"; base data `{d['base']}` x{d['base_mix']}" if d.get("base") else ""),
             f"- training: {t.get('epochs')} epochs, lr {t.get('lr')}, batch {t.get('batch_size')}, seed {t.get('seed')}; "
             f"selected on validation: {t.get('selected')}; {t.get('seconds')} s",
             f"- the same training: `{t.get('command')}`", "",
             "| part | images | players | per class |", "|---|---|---|---|"]
    for part in ("train", "val", "heldout"):
        c = d.get(part) or {}
        per = ", ".join(f"{k} {v}" for k, v in (c.get("per_class") or {}).items())
        lines.append(f"| {part} | {c.get('images')} | {c.get('players')} | {per} |")
    return "\n".join(lines) + "\n"
