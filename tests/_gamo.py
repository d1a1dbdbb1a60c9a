"""Helpers of the GaMo tests: a fake engine (no model, no detector) and image bytes."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from fape.gamo.config import GameConfig, ServerConfig
from fape.gamo.engine import Engine, Face

NAMES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


class FakeEngine:
    """Frame pixel (0, 0, red) // 30 picks the expression with probability 0.9; an all-black frame
    has no face. Features are the one-hot vector, so templates behave like the classes."""

    def __init__(self, path: Path, version: str):
        self.path, self.version, self.label_names = path, version, NAMES

    def analyze(self, frame: np.ndarray) -> Face | None:
        if not frame.any():
            return None
        k = min(int(frame[0, 0, 0]) // 30, len(NAMES) - 1)
        probs = np.full(len(NAMES), 0.1 / (len(NAMES) - 1), np.float32)
        probs[k] = 0.9
        return Face(np.array([10, 10, 60, 60], np.float32), probs, np.eye(len(NAMES), dtype=np.float32)[k],
                    np.full((96, 96, 3), 40 * k % 256, np.uint8), None)

    decide = Engine.decide


def frame_bytes(expression: str | None, fmt: str = "JPEG", size=(64, 48)) -> bytes:
    """An image the fake engine reads as ``expression`` (None: no face)."""
    img = np.zeros((size[1], size[0], 3), np.uint8)
    if expression is not None:
        img[:] = 30 * NAMES.index(expression) + 5
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, quality=100)
    return buf.getvalue()


def server_config(root: Path, **game) -> ServerConfig:
    return ServerConfig(data=str(root), rate_per_second=1000.0, rate_burst=1000,
                        game=GameConfig(**{"explore": 0.0, **game}))


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def collect(client, players: int = 4, bombs: int = 4) -> None:
    """Through the API: ``players`` new players, each defusing ``bombs`` bombs with the fake engine."""
    for _ in range(players):
        pid = client.post("/api/players", json={"consent": True}).json()["id"]
        sid = client.post("/api/sessions", json={"player_id": pid}).json()["session"]
        for _ in range(bombs):
            b = client.post(f"/api/sessions/{sid}/bombs").json()
            client.post(f"/api/sessions/{sid}/frames", content=frame_bytes(b["expression"]),
                        headers={"Content-Type": "image/jpeg"})
