"""The game's state in SQLite (stdlib), behind ``Repository``: the app and the dataset writer
only call its methods, so a server database (PostgreSQL, ...) can replace it by implementing
the same methods. One connection guarded by a lock: the ASGI app runs sync routes in threads.

Ids: ``players.id`` is a random secret the player's browser keeps (it authorises
``DELETE /players/{id}``); ``players.pseudonym`` is the public name used as the dataset's
subject. Neither is ever part of a path built from client input: the server generates both.
"""
from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS players (
  id TEXT PRIMARY KEY, pseudonym TEXT UNIQUE NOT NULL, created REAL NOT NULL,
  store_frames INTEGER NOT NULL, consent TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY, player_id TEXT NOT NULL REFERENCES players(id) ON DELETE CASCADE,
  mode TEXT NOT NULL, started REAL NOT NULL, ended REAL, score INTEGER NOT NULL,
  lives INTEGER NOT NULL, model_version TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bombs (
  id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  expression TEXT NOT NULL, issued REAL NOT NULL, status TEXT NOT NULL, resolved REAL);
CREATE TABLE IF NOT EXISTS samples (
  id TEXT PRIMARY KEY, player_id TEXT NOT NULL REFERENCES players(id) ON DELETE CASCADE,
  session_id TEXT NOT NULL, bomb_id INTEGER NOT NULL, expression TEXT NOT NULL, label INTEGER NOT NULL,
  path TEXT NOT NULL, frame_path TEXT, prob REAL NOT NULL, threshold REAL NOT NULL, distance REAL,
  mode TEXT NOT NULL, model_version TEXT NOT NULL, created REAL NOT NULL,
  landmarks BLOB, landmarks_ok INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS templates (
  player_id TEXT NOT NULL REFERENCES players(id) ON DELETE CASCADE, expression TEXT NOT NULL,
  features BLOB NOT NULL, created REAL NOT NULL, PRIMARY KEY (player_id, expression));
"""


def new_id(nbytes: int = 16) -> str:
    return secrets.token_hex(nbytes)


class Repository:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _all(self, sql: str, args=()) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self._db.execute(sql, args).fetchall()]

    def _one(self, sql: str, args=()) -> dict | None:
        rows = self._all(sql, args)
        return rows[0] if rows else None

    def _run(self, sql: str, args=()) -> int:
        with self._lock:
            cur = self._db.execute(sql, args)
            return cur.lastrowid

    # ------------------------------------------------------------ players
    def add_player(self, store_frames: bool, consent: str) -> dict:
        pid, pseudo = new_id(), f"p{new_id(4)}"
        self._run("INSERT INTO players VALUES (?, ?, ?, ?, ?)", (pid, pseudo, time.time(), int(store_frames), consent))
        return self.player(pid)

    def player(self, pid: str) -> dict | None:
        return self._one("SELECT * FROM players WHERE id = ?", (pid,))

    def players(self) -> list[dict]:
        return self._all("""SELECT p.pseudonym, p.created, p.store_frames,
                              (SELECT COUNT(*) FROM sessions s WHERE s.player_id = p.id) AS sessions,
                              (SELECT COUNT(*) FROM samples m WHERE m.player_id = p.id) AS samples,
                              (SELECT COUNT(*) FROM templates t WHERE t.player_id = p.id) AS templates
                            FROM players p ORDER BY p.created""")

    def delete_player(self, pid: str) -> list[dict]:
        """Remove the player and every row that refers to it; returns the removed samples (for files)."""
        with self._lock:
            gone = self._all("SELECT path, frame_path FROM samples WHERE player_id = ?", (pid,))
            self._db.execute("BEGIN")
            try:
                self._db.execute("DELETE FROM bombs WHERE session_id IN (SELECT id FROM sessions WHERE player_id = ?)",
                                 (pid,))
                for table in ("samples", "templates", "sessions"):
                    self._db.execute(f"DELETE FROM {table} WHERE player_id = ?", (pid,))
                self._db.execute("DELETE FROM players WHERE id = ?", (pid,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return gone

    # ------------------------------------------------------------ sessions and bombs
    def add_session(self, player_id: str, mode: str, lives: int, model_version: str) -> dict:
        sid = new_id()
        self._run("INSERT INTO sessions VALUES (?, ?, ?, ?, NULL, 0, ?, ?)",
                  (sid, player_id, mode, time.time(), lives, model_version))
        return self.session(sid)

    def session(self, sid: str) -> dict | None:
        return self._one("SELECT * FROM sessions WHERE id = ?", (sid,))

    def sessions(self) -> list[dict]:
        return self._all("""SELECT s.id, p.pseudonym, s.mode, s.started, s.ended, s.score, s.lives, s.model_version
                            FROM sessions s JOIN players p ON p.id = s.player_id ORDER BY s.started""")

    def update_session(self, sid: str, **fields) -> None:
        cols = ", ".join(f"{k} = ?" for k in fields)  # keys are code constants, never client input
        self._run(f"UPDATE sessions SET {cols} WHERE id = ?", (*fields.values(), sid))

    def add_bomb(self, sid: str, expression: str) -> dict:
        bid = self._run("INSERT INTO bombs (session_id, expression, issued, status) VALUES (?, ?, ?, 'falling')",
                        (sid, expression, time.time()))
        return self._one("SELECT * FROM bombs WHERE id = ?", (bid,))

    def falling_bombs(self, sid: str) -> list[dict]:
        return self._all("SELECT * FROM bombs WHERE session_id = ? AND status = 'falling' ORDER BY id", (sid,))

    def resolve_bomb(self, bid: int, status: str) -> bool:
        """Mark a falling bomb defused or landed; False when it was not falling (no double counting)."""
        with self._lock:
            cur = self._db.execute("UPDATE bombs SET status = ?, resolved = ? WHERE id = ? AND status = 'falling'",
                                   (status, time.time(), bid))
            return cur.rowcount == 1

    def bombs(self, sid: str) -> list[dict]:
        return self._all("SELECT * FROM bombs WHERE session_id = ? ORDER BY id", (sid,))

    # ------------------------------------------------------------ samples
    def add_sample(self, row: dict, landmarks: np.ndarray | None) -> None:
        row = {"created": time.time(), **row}
        lm = None if landmarks is None else np.asarray(landmarks, np.float32).tobytes()
        cols = ("id", "player_id", "session_id", "bomb_id", "expression", "label", "path", "frame_path", "prob",
                "threshold", "distance", "mode", "model_version", "created")
        self._run(f"INSERT INTO samples ({', '.join(cols)}, landmarks, landmarks_ok) "
                  f"VALUES ({', '.join('?' * (len(cols) + 2))})",
                  (*(row.get(c) for c in cols), lm, int(landmarks is not None)))

    def samples(self) -> list[dict]:
        rows = self._all("""SELECT m.*, p.pseudonym FROM samples m JOIN players p ON p.id = m.player_id
                            ORDER BY m.created, m.id""")
        for r in rows:
            blob = r.pop("landmarks")
            r["landmarks"] = None if blob is None else np.frombuffer(blob, np.float32).reshape(68, 2)
        return rows

    def counts(self, player_id: str | None = None) -> dict[str, int]:
        where, args = ("WHERE player_id = ?", (player_id,)) if player_id else ("", ())
        return {r["expression"]: r["n"] for r in
                self._all(f"SELECT expression, COUNT(*) AS n FROM samples {where} GROUP BY expression", args)}

    # ------------------------------------------------------------ templates (customized version)
    def set_template(self, player_id: str, expression: str, features: np.ndarray) -> None:
        self._run("INSERT OR REPLACE INTO templates VALUES (?, ?, ?, ?)",
                  (player_id, expression, np.asarray(features, np.float32).tobytes(), time.time()))

    def templates(self, player_id: str) -> dict[str, np.ndarray]:
        return {r["expression"]: np.frombuffer(r["features"], np.float32)
                for r in self._all("SELECT expression, features FROM templates WHERE player_id = ?", (player_id,))}

    def stats(self) -> dict:
        one = lambda sql: self._one(sql)["n"]  # noqa: E731
        return {"players": one("SELECT COUNT(*) AS n FROM players"), "sessions": one("SELECT COUNT(*) AS n FROM sessions"),
                "samples": one("SELECT COUNT(*) AS n FROM samples"),
                "bombs": {r["status"]: r["n"] for r in self._all("SELECT status, COUNT(*) AS n FROM bombs GROUP BY status")}}

