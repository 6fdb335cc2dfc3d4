"""Persistent judge cache: a SQLite file so that a rerun or a resumed crash never pays twice.

Keyed by a hash of (judge model, endpoint = scheme://host[:port]/path of the base URL, full
prompt messages): two servers on different ports or paths never share verdicts. Only successfully
parsed replies are stored, each committed at once; the raw reply, its token usage and the
served model are kept. The API key is never part of a key or a row. The file uses a WAL
journal so that several processes (one per lmms-eval rank) may share it; inside a process
one connection serves every thread under a lock (a query takes microseconds next to a judge
call, and per-thread connections would pile up as thread pools come and go).

The same file also keeps raw replies of other LLM calls (``get_reply``/``put_reply``, table
``replies``: the Q&A generator's proposals and answers, with their token usage), keyed the
same way, so a resumed generation repeats no call either; and what a server was found to
accept (``get_capability``/``put_capability``, table ``capabilities``: the
``response_format`` mode of ``core/response_format.py``), so a rerun starts where the last
run settled instead of being refused again.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
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
_REPLIES = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    kind TEXT NOT NULL,
    raw TEXT NOT NULL,
    usage TEXT NOT NULL,
    created REAL NOT NULL
)
"""

_CAPABILITIES = """
CREATE TABLE IF NOT EXISTS capabilities (
    model TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    detail TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (model, endpoint, name)
)
"""


# Added to ``verdicts`` later (old files get them on open, NULL for their rows): the token
# usage a verdict was paid with and the model the server answered as, so that a cached
# verdict still accounts for its tokens (evads_tasks.core.judge.accounting).
_VERDICT_USAGE = (("prompt_tokens", "INTEGER"), ("completion_tokens", "INTEGER"),
                  ("served_model", "TEXT"))


@dataclass(frozen=True)
class CachedVerdict:
    """A stored verdict: its score, raw reply and (None when not recorded) its usage."""

    score: float
    raw: str
    prompt_tokens: int | None
    completion_tokens: int | None
    served_model: str | None


class JudgeCacheError(ValueError):
    """The cache file cannot be used; the message names it."""


def cache_key(model: str, endpoint: str, messages: list[dict[str, str]],
              params: dict | None = None) -> str:
    """sha256 over the model, the endpoint (never the API key), the exact messages sent and,
    when given, what else changes a verdict (the official protocol's call parameters and
    parse rule; the evads protocol passes none, so its keys stay as they were)."""
    key = [model, endpoint, messages] + ([params] if params is not None else [])
    payload = json.dumps(key, ensure_ascii=False, sort_keys=True)
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
            self._connection.execute(_REPLIES)
            self._connection.execute(_CAPABILITIES)
            self._add_usage_columns()
        except sqlite3.DatabaseError as error:
            self._connection.close()
            raise JudgeCacheError(f"{self.path}: not a usable judge cache ({error}); move it away "
                             "or point EVADS_CACHE_DIR elsewhere") from error

    def get(self, key: str) -> tuple[float, str] | None:
        """(score, raw reply) for a cached key, else None."""
        hit = self.get_verdict(key)
        return None if hit is None else (hit.score, hit.raw)

    def _add_usage_columns(self) -> None:
        have = {row[1] for row in self._connection.execute("PRAGMA table_info(verdicts)")}
        for name, kind in _VERDICT_USAGE:
            if name not in have:
                try:
                    self._connection.execute(f"ALTER TABLE verdicts ADD COLUMN {name} {kind}")
                except sqlite3.OperationalError as error:  # another process added it first
                    if "duplicate column" not in str(error):
                        raise

    def get_verdict(self, key: str) -> CachedVerdict | None:
        """The stored verdict with its usage, else None."""
        with self._lock:
            row = self._connection.execute(
                "SELECT score, raw, prompt_tokens, completion_tokens, served_model "
                "FROM verdicts WHERE key = ?", (key,)).fetchone()
        return None if row is None else CachedVerdict(float(row[0]), str(row[1]), *row[2:])

    def put(self, key: str, *, model: str, endpoint: str, rubric: str, score: float,
            raw: str, prompt_tokens: int | None = None, completion_tokens: int | None = None,
            served_model: str | None = None) -> None:
        with self._lock:
            self._connection.execute(
                "INSERT OR REPLACE INTO verdicts (key, model, endpoint, rubric, score, raw, "
                "created, prompt_tokens, completion_tokens, served_model) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, model, endpoint, rubric, score, raw, time.time(), prompt_tokens,
                 completion_tokens, served_model))

    def get_reply(self, key: str) -> tuple[str, dict] | None:
        """(raw reply, token usage) of a cached LLM reply, else None."""
        with self._lock:
            row = self._connection.execute(
                "SELECT raw, usage FROM replies WHERE key = ?", (key,)).fetchone()
        return None if row is None else (str(row[0]), json.loads(row[1]))

    def put_reply(self, key: str, *, model: str, endpoint: str, kind: str, raw: str,
                  usage: dict) -> None:
        with self._lock:
            self._connection.execute(
                "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, model, endpoint, kind, raw, json.dumps(usage), time.time()))

    def get_capability(self, model: str, endpoint: str, name: str) -> tuple[str, str] | None:
        """(value, detail) stored for a server and model, else None."""
        with self._lock:
            row = self._connection.execute(
                "SELECT value, detail FROM capabilities WHERE model = ? AND endpoint = ? "
                "AND name = ?", (model, endpoint, name)).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def put_capability(self, model: str, endpoint: str, name: str, value: str,
                       detail: str) -> None:
        with self._lock:
            self._connection.execute(
                "INSERT OR REPLACE INTO capabilities VALUES (?, ?, ?, ?, ?, ?)",
                (model, endpoint, name, value, detail, time.time()))

    def __len__(self) -> int:
        with self._lock:
            return int(self._connection.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._connection.close()
