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
                    "promoted": True, "reason": "initial model", "parent": None, "heldout": None}
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


def card_markdown(card: dict) -> str:
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    h = card.get("heldout") or {}
    lines = [f"# GaMo model {card['version']}", "",
             f"- parent: {card.get('parent')} ({card.get('parent_model')})",
             f"- promoted: **{'yes' if card['promoted'] else 'no'}** - {card['reason']}",
             f"- held-out ({h.get('unit')}, {h.get('n')} images): candidate {pct(h.get('candidate'))}, "
             f"parent {pct(h.get('parent'))}",
             f"- data: {json.dumps(card.get('data', {}))}",
             f"- training: {json.dumps(card.get('training', {}))}", ""]
    return "\n".join(lines)
