"""Persistent judge cache: a SQLite file so that a rerun or a resumed crash never pays twice.

Keyed by a hash of (judge model, endpoint = scheme://host[:port]/path of the base URL, full
prompt messages): two servers on different ports or paths never share verdicts. Only successfully
parsed replies are stored, each committed at once; the raw reply is kept. The API key is
never part of a key or a row. The file uses a WAL journal so that several processes (one
per lmms-eval rank) may share it; inside a process one connection serves every thread under a
lock (a query takes microseconds next to a judge call, and per-thread connections would pile
up as thread pools come and go).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

CACHE_FILE = "judge_cache.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    rubric TEXT NOT NULL,
    score REAL NOT NULL,
    raw TEXT NOT NULL,
    created REAL NOT NULL
)
"""


class JudgeCacheError(ValueError):
    """The cache file cannot be used; the message names it."""


def cache_key(model: str, endpoint: str, messages: list[dict[str, str]]) -> str:
    """sha256 over the model, the endpoint (never the API key) and the exact messages sent."""
    payload = json.dumps([model, endpoint, messages], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class JudgeCache:
    """Thread-safe get/put of parsed verdicts in ``<cache_dir>/judge_cache.sqlite3``."""

    def __init__(self, cache_dir: str | Path) -> None:
        self.path = Path(cache_dir).expanduser() / CACHE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                           check_same_thread=False)
        try:
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=NORMAL")
            self._connection.execute(_SCHEMA)
        except sqlite3.DatabaseError as error:
            self._connection.close()
            raise JudgeCacheError(f"{self.path}: not a usable judge cache ({error}); move it away "
                             "or point EVADS_CACHE_DIR elsewhere") from error

    def get(self, key: str) -> tuple[float, str] | None:
        """(score, raw reply) for a cached key, else None."""
        with self._lock:
            row = self._connection.execute(
                "SELECT score, raw FROM verdicts WHERE key = ?", (key,)).fetchone()
        return None if row is None else (float(row[0]), str(row[1]))

    def put(self, key: str, *, model: str, endpoint: str, rubric: str, score: float,
            raw: str) -> None:
        with self._lock:
            self._connection.execute(
                "INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, model, endpoint, rubric, score, raw, time.time()))

    def __len__(self) -> int:
        with self._lock:
            return int(self._connection.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._connection.close()
