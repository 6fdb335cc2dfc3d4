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
``response_format`` mode of ``core/chat/response_format.py``), so a rerun starts where the last
run settled instead of being refused again.

A damaged, read-only or full cache must never cost a run. It is found at open where it can
be (a quick integrity check and a write probe): :class:`JudgeCacheError` names the file, the
cause and the fix (only a damaged file is to be moved away; a read-only one is valid). When
it fails later (the disk fills mid-run), reads count as misses and writes are skipped: the
run goes on, every answer is kept, and :attr:`JudgeCache.problem` says what happened and how
to resume, for the command to report and exit non-zero on after writing its results.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CACHE_FILE = "judge_cache.sqlite3"
logger = logging.getLogger(__name__)

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


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


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
        self.problem: str | None = None  # the first failure after open (see the module doc)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                               check_same_thread=False)
        except (OSError, sqlite3.Error) as error:
            raise JudgeCacheError(self._open_failure(error)) from None
        try:
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=NORMAL")
            self._connection.execute(_SCHEMA)
            self._connection.execute(_REPLIES)
            self._connection.execute(_CAPABILITIES)
            self._add_usage_columns()
            self._check()
        except sqlite3.DatabaseError as error:
            self._connection.close()
            raise JudgeCacheError(self._open_failure(error)) from None

    def _check(self) -> None:
        """A quick integrity check (every page read, in seconds for a large file) and a
        write probe (a write lock taken and released): damage, a read-only file or folder
        are found before any judge call."""
        found = [row[0] for row in self._connection.execute("PRAGMA quick_check(3)")]
        if found != ["ok"]:
            raise sqlite3.DatabaseError(f"database disk image is malformed: "
                                        f"{'; '.join(map(str, found))}")
        self._connection.execute("BEGIN IMMEDIATE")
        self._connection.execute("ROLLBACK")

    def _cause(self, error: Exception) -> tuple[str, str]:
        """(what is wrong, what to do) for a failure of this file."""
        text = str(error).lower()
        folder = self.path.parent
        if "malformed" in text or "not a database" in text or "encrypted" in text:
            return "damaged", (f"move {self.path.name} away (its verdicts are lost; they "
                               "are asked again) or use another cache folder")
        if "full" in text or getattr(error, "errno", None) == errno.ENOSPC:
            return "its disk is full", (f"free space on the disk of {folder} or use another "
                                        "cache folder")
        if "readonly" in text or "read-only" in text or not os.access(folder, os.W_OK) or (
                self.path.exists() and not os.access(self.path, os.W_OK)):
            return "not writable (read-only)", (
                f"make {folder} and {self.path.name} writable, or use another cache folder "
                f"(copy {self.path.name} there to keep its verdicts: the file is not damaged)")
        return "not usable", "fix the cause above, or use another cache folder"

    def _open_failure(self, error: Exception) -> str:
        cause, fix = self._cause(error)
        return f"{self.path}: the judge cache is {cause} ({_one_line(error)}); {fix}"

    def _failed(self, action: str, error: sqlite3.Error) -> None:
        """Record the first failure after open; the run goes on without the cache."""
        cause, fix = self._cause(error)
        message = (f"judge cache {self.path} could not be {action} mid-run: {cause} "
                   f"({_one_line(error)}). Every answer of the run was kept, but verdicts and "
                   f"replies from then on were not cached; {fix}, then rerun the same "
                   "command: what was cached before is reused, the rest is asked again")
        with self._lock:
            first, self.problem = self.problem is None, self.problem or message
        if first:
            logger.warning("%s", message)

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
        """The stored verdict with its usage, else None (also when the file fails: a miss)."""
        row = self._read("SELECT score, raw, prompt_tokens, completion_tokens, served_model "
                         "FROM verdicts WHERE key = ?", (key,))
        return None if row is None else CachedVerdict(float(row[0]), str(row[1]), *row[2:])

    def put(self, key: str, *, model: str, endpoint: str, rubric: str, score: float,
            raw: str, prompt_tokens: int | None = None, completion_tokens: int | None = None,
            served_model: str | None = None) -> None:
        """Store a verdict; a failure is recorded in :attr:`problem`, not raised."""
        self._write("INSERT OR REPLACE INTO verdicts (key, model, endpoint, rubric, score, raw, "
                    "created, prompt_tokens, completion_tokens, served_model) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (key, model, endpoint, rubric, score, raw, time.time(), prompt_tokens,
                     completion_tokens, served_model))

    def get_reply(self, key: str) -> tuple[str, dict] | None:
        """(raw reply, token usage) of a cached LLM reply, else None (also when the file
        fails: a miss)."""
        row = self._read("SELECT raw, usage FROM replies WHERE key = ?", (key,))
        return None if row is None else (str(row[0]), json.loads(row[1]))

    def put_reply(self, key: str, *, model: str, endpoint: str, kind: str, raw: str,
                  usage: dict) -> None:
        """Store an LLM reply; a failure is recorded in :attr:`problem`, not raised."""
        self._write("INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (key, model, endpoint, kind, raw, json.dumps(usage), time.time()))

    def _read(self, statement: str, values: tuple) -> tuple | None:
        """The row ``statement`` selects, else None (also when the file fails: recorded in
        :attr:`problem`, a miss for the caller)."""
        try:
            with self._lock:
                return self._connection.execute(statement, values).fetchone()
        except sqlite3.Error as error:
            self._failed("read", error)
            return None

    def _write(self, statement: str, values: tuple) -> None:
        try:
            with self._lock:
                self._connection.execute(statement, values)
        except sqlite3.Error as error:
            self._failed("written", error)

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
