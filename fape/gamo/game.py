"""The game's rules, apart from HTTP: players (after consent), sessions, bombs with balanced
targets, frames verified against the falling bombs, defused frames stored as labelled crops,
and a player's deletion. ``app.py`` maps routes onto these methods."""
from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np

from fape.gamo.balance import choose_target
from fape.gamo.config import ServerConfig
from fape.gamo.db import Repository, new_id
from fape.gamo.engine import Engine
from fape.gamo.store import DatasetStore, _safe, jpeg_bytes
from fape.gamo.uploads import Refused
from fape.gamo.versions import Registry
from fape.utils.io import atomic_write_bytes

CONSENT_VERSION = "gamo-consent-1"


def verify(scores: np.ndarray, names: list[str], bombs: list[dict], thresholds) -> tuple[dict | None, float]:
    """The falling bomb whose expression's score passes its threshold by the largest margin
    (one frame defuses at most one bomb: one crop, one label), and that score."""
    best, best_margin, best_score = None, -1.0, 0.0
    for b in bombs:
        s = float(scores[names.index(b["expression"])])
        margin = s - thresholds(b["expression"])
        if margin >= 0 and margin > best_margin:
            best, best_margin, best_score = b, margin, s
    return best, best_score


def nearest_bomb(dist: np.ndarray, names: list[str], bombs: list[dict], margin: float) -> dict | None:
    """The falling bomb of the expression whose template is nearest (L2), if it is nearer than
    the second nearest by at least ``margin``."""
    order = np.argsort(dist)
    if len(order) > 1 and dist[order[1]] - dist[order[0]] < margin:
        return None
    return next((b for b in bombs if b["expression"] == names[order[0]]), None)


class Game:
    def __init__(self, cfg: ServerConfig, initial_model: Path, engine_factory=None, seed: int | None = None):
        from fape.predict.detect import DetectOptions

        self.cfg, self.root = cfg, Path(cfg.data)
        self.repo = Repository(self.root / "gamo.sqlite")
        self.registry = Registry(self.root / "models", initial_model)
        self.detect_opts = DetectOptions(cfg.detector, 1.0, cfg.min_face).check()
        self._engine_factory = engine_factory or (lambda path, version: Engine(path, version, self.detect_opts,
                                                                               cfg.crop_size))
        self._engine, self._engine_mtime = None, None
        self.rng = np.random.default_rng(seed)
        self._lock = threading.RLock()  # dataset folder writes and engine swaps
        eng = self.engine()
        self.store = DatasetStore(self.root / "dataset", eng.label_names, cfg.crop_size,
                                  {"detector": cfg.detector})
        with self._lock:  # the folder always mirrors the database (e.g. after a crash between the two)
            self.store.write_index(self.repo.samples())

    # ------------------------------------------------------------ the served model
    def engine(self) -> Engine:
        """The current version's engine; reloaded when ``fape gamo retrain`` promoted another."""
        with self._lock:
            m = self.registry.mtime()
            if m != self._engine_mtime:
                cur = self.registry.current()
                if self._engine is None or self._engine.version != cur["version"]:
                    self._engine = self._engine_factory(Path(cur["model"]), cur["version"])
                self._engine_mtime = m
            return self._engine

    @property
    def names(self) -> list[str]:
        return self.engine().label_names

    # ------------------------------------------------------------ players
    def new_player(self, consent: bool, store_frames: bool) -> dict:
        if consent is not True:
            raise Refused(400, "no_consent", "nothing is stored without consent: agree on the consent page first")
        return self.repo.add_player(bool(store_frames), CONSENT_VERSION)

    def player(self, pid: str) -> dict:
        p = self.repo.player(str(pid))
        if p is None:
            raise Refused(404, "unknown_player", "no such player (deleted, or never agreed)")
        return p

    def delete_player(self, pid: str) -> dict:
        p = self.player(pid)
        with self._lock:
            gone = self.repo.delete_player(p["id"])
            self.store.rebuild(self.repo.samples())  # the player's crops leave with the old folder
            shutil.rmtree(self.root / "frames" / _safe(p["pseudonym"]), ignore_errors=True)
        return {"deleted": p["pseudonym"], "samples": len(gone)}

    def add_template(self, pid: str, expression: str, frame: np.ndarray) -> dict:
        p = self.player(pid)
        if expression not in self.names:
            raise Refused(400, "unknown_expression", f"expression must be one of {', '.join(self.names)}")
        face = self.engine().analyze(frame)
        if face is None:
            raise Refused(422, "no_face", f"no face found in the {expression} capture: please capture it again")
        self.repo.set_template(p["id"], expression, face.features)
        return {"expression": expression, "templates": sorted(self.repo.templates(p["id"]))}

    # ------------------------------------------------------------ sessions
    def new_session(self, pid: str, mode: str) -> dict:
        p = self.player(pid)
        if mode not in ("general", "custom"):
            raise Refused(400, "bad_mode", "mode must be 'general' or 'custom'")
        if mode == "custom":
            missing = [n for n in self.names if n not in self.repo.templates(p["id"])]
            if missing:
                raise Refused(400, "templates_missing", f"register these templates first: {', '.join(missing)}")
        return self.repo.add_session(p["id"], mode, self.cfg.game.lives, self.engine().version)

    def session(self, sid: str, playing: bool = True) -> dict:
        s = self.repo.session(str(sid))
        if s is None:
            raise Refused(404, "unknown_session", "no such session")
        if playing and s["ended"] is not None:
            raise Refused(409, "game_over", "this game is over: start a new one")
        return s

    def new_bomb(self, sid: str) -> dict:
        s = self.session(sid)
        falling = self.repo.falling_bombs(s["id"])
        if len(falling) >= self.cfg.game.max_bombs:
            raise Refused(409, "too_many_bombs", f"at most {self.cfg.game.max_bombs} bombs fall at once")
        target = choose_target(self.names, self.repo.counts(), self.repo.counts(s["player_id"]), self.rng,
                               self.cfg.game.explore, tuple(b["expression"] for b in falling))
        b = self.repo.add_bomb(s["id"], target)
        return {"bomb": b["id"], "expression": target, "threshold": self.cfg.game.threshold(target)}

    def landed(self, sid: str, bomb_id: int) -> dict:
        s = self.session(sid)
        bomb = next((b for b in self.repo.falling_bombs(s["id"]) if b["id"] == bomb_id), None)
        if bomb is None or not self.repo.resolve_bomb(bomb["id"], "landed"):
            raise Refused(409, "not_falling", "this bomb is not falling (defused, landed or not yours)")
        lives = s["lives"] - 1
        fields = {"lives": lives}
        if lives <= 0:
            fields["ended"] = time.time()
            for b in self.repo.falling_bombs(s["id"]):  # the game is over: they never land nor get defused
                self.repo.resolve_bomb(b["id"], "cancelled")
        self.repo.update_session(s["id"], **fields)
        return {"score": s["score"], "lives": lives, "game_over": lives <= 0}

    # ------------------------------------------------------------ frames
    def frame(self, sid: str, image: np.ndarray) -> dict:
        s = self.session(sid)
        engine = self.engine()
        face = engine.analyze(image)
        if face is None:
            raise Refused(422, "no_face", "no face found in the frame: face the camera, with light on your face")
        templates = self.repo.templates(s["player_id"]) if s["mode"] == "custom" else {}
        scores, dist = engine.decide(face, templates)
        falling = self.repo.falling_bombs(s["id"])
        if dist is None:  # general version: verification against each bomb's own threshold
            bomb, score = verify(scores, engine.label_names, falling, self.cfg.game.threshold)
        else:  # customized version: the nearest template is the detected expression
            bomb, score = nearest_bomb(dist, engine.label_names, falling, self.cfg.game.template_margin), 0.0
            score = float(scores[engine.label_names.index(bomb["expression"])]) if bomb else 0.0
        out = {"face": [round(float(v), 1) for v in face.box], "mode": s["mode"],
               "probs": {n: round(float(p), 4) for n, p in zip(engine.label_names, face.probs)},
               "scores": {n: round(float(p), 4) for n, p in zip(engine.label_names, scores)},
               "defused": None, "score": s["score"], "lives": s["lives"], "model_version": engine.version}
        if dist is not None:
            out["distances"] = {n: round(float(d), 3) for n, d in zip(engine.label_names, dist)}
        if bomb is not None and self.repo.resolve_bomb(bomb["id"], "defused"):
            k = engine.label_names.index(bomb["expression"])
            self._store(s, bomb, k, image, face, float(score), None if dist is None else float(dist[k]), engine.version)
            out["score"] = s["score"] + 1
            self.repo.update_session(s["id"], score=out["score"])
            out["defused"] = {"bomb": bomb["id"], "expression": bomb["expression"], "score": round(score, 4),
                              "threshold": None if dist is not None else self.cfg.game.threshold(bomb["expression"])}
        return out

    def _store(self, s: dict, bomb: dict, label: int, image, face, prob: float, distance, version: str) -> None:
        p = self.repo.player(s["player_id"])
        sample_id = new_id(8)
        rel = self.store.rel_path(p["pseudonym"], sample_id)
        frame_path = None
        with self._lock:
            self.store.save_crop(rel, face.crop)
            if p["store_frames"]:  # the full frame only with the player's opt-in
                frame_path = f"frames/{_safe(p['pseudonym'])}/{sample_id}.jpg"
                atomic_write_bytes(self.root / frame_path, jpeg_bytes(image))
            self.repo.add_sample({"id": sample_id, "player_id": p["id"], "session_id": s["id"], "bomb_id": bomb["id"],
                                  "expression": bomb["expression"], "label": label, "path": rel,
                                  "frame_path": frame_path, "prob": prob,
                                  "threshold": (self.cfg.game.threshold(bomb["expression"]) if distance is None
                                                else self.cfg.game.template_margin),  # custom: an L2 margin
                                  "distance": distance,
                                  "mode": s["mode"], "model_version": version}, face.landmarks)
            self.store.write_index(self.repo.samples())

    # ------------------------------------------------------------ admin
    def admin(self) -> dict:
        counts = self.repo.counts()
        reg = self.registry.read()
        return {"classes": {n: counts.get(n, 0) for n in self.names}, "stats": self.repo.stats(),
                "players": self.repo.players(), "sessions": self.repo.sessions()[-50:],
                "model": {"current": reg["current"], "versions": reg["versions"]},
                "thresholds": {n: self.cfg.game.threshold(n) for n in self.names}}
