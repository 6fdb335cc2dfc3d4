"""The judge drift canary: a fixed set of answers, judged once and pinned, judged again later.

Why: judge drift is the best-documented failure of judge-scored video benchmarks (the same
saved predictions re-judged later moved ActivityNet-QA from 35.2 to 43.6; GPT-3.5 snapshots
differ by about 10%), and the paper's judge, ``qwen-plus``, is an alias its provider
re-points. Two runs' scores compare only if the judge still judges as it did.

So ``python -m evads_tasks canary --pin`` judges the shipped items (``canary_items.jsonl``:
40 (question, metadata, clues, reference, answer) items in our own words about made-up
products, four per level and language, over the five tasks and both languages) and stores
the verdicts beside the judge cache (``judge_canary.json``, one pin per requested model and
protocol) with the model name(s) the server answered as. ``canary --check``, and a run before
it generates anything, judge the items again through the cache-bypassing path (a cached
verdict would only repeat the pin) and compare: the share of items with the same verdict
(a failed verdict counts as changed) and Cohen's kappa with quadratic weights
(:mod:`evads_tasks.core.agreement`). Below ``1 - $EVADS_CANARY_TOLERANCE`` (default 0.1)
for either, the judge has drifted: ``--check`` exits 4 and a run logs a WARNING with the
figures, goes on, and its results and report record the canary's result. The offline
similarity judge is deterministic and is not checked.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..agreement import quadratic_kappa
from .api import Judge, JudgeConfigError, JudgeRequest
from .config import default_cache_dir, judge_from_env
from .error_rate import share_setting
from .http_judge import HttpJudge

ITEMS_PATH = Path(__file__).with_name("canary_items.jsonl")
CANARY_FILE = "judge_canary.json"
TOLERANCE_ENV = "EVADS_CANARY_TOLERANCE"
DEFAULT_TOLERANCE = 0.1
PASS, DRIFT, NOT_PINNED, STALE, SKIPPED = "pass", "drift", "not pinned", "stale pin", "skipped"
_ITEM_FIELDS = ("id", "language", "task", "level", "question", "metadata", "clues",
                "reference", "answer")


@dataclass(frozen=True)
class CanaryItem:
    """One canary item: the request the judge sees and the level its answer was written at."""

    id: str
    language: str
    task: str
    level: float
    request: JudgeRequest


def load_items(path: Path = ITEMS_PATH) -> list[CanaryItem]:
    """The canary items of a JSONL file; ValueError naming the line and field."""
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            missing = [name for name in _ITEM_FIELDS if name not in row]
            if missing:
                raise ValueError(f"missing field(s) {', '.join(missing)}")
            items.append(CanaryItem(str(row["id"]), row["language"], row["task"],
                                    float(row["level"]), JudgeRequest(
                                        question=row["question"], metadata=row["metadata"],
                                        clues=row["clues"], reference=row["reference"],
                                        answer=row["answer"])))
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path}, line {number}: {error}") from None
    return items


def items_digest(path: Path = ITEMS_PATH) -> str:
    """The items file's sha256: a pin is only compared with the items it was made from."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tolerance(env: Mapping[str, str] | None = None) -> float:
    """``$EVADS_CANARY_TOLERANCE``: how far exact agreement and kappa may fall below 1
    (default 0.1); JudgeConfigError unless a number in [0, 1]."""
    return share_setting(TOLERANCE_ENV, DEFAULT_TOLERANCE, env)


def pin_key(judge: Judge) -> str:
    """Which pin a judge is checked against: the requested model and the protocol (not the
    endpoint: the same model moved to another server is the same judge)."""
    settings = judge.settings()
    return f"{settings.get('model')} | protocol {settings.get('protocol', {}).get('name')}"


@dataclass(frozen=True)
class Judged:
    """The canary items judged once: verdict per item id (None: failed), the model names the
    server answered as, HTTP calls, tokens and wall time."""

    verdicts: dict[str, float | None]
    served_models: dict[str, int]
    calls: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float


def judge_items(judge: Judge, items: Sequence[CanaryItem]) -> Judged:
    """Judge every item (concurrently, as the judge bounds it)."""
    start = time.monotonic()
    results = judge.judge_many([item.request for item in items])
    served = Counter(r.served_model for r in results if r.served_model)
    return Judged({item.id: r.score for item, r in zip(items, results, strict=True)},
                  dict(served), sum(r.calls for r in results),
                  sum(r.prompt_tokens or 0 for r in results),
                  sum(r.completion_tokens or 0 for r in results),
                  time.monotonic() - start)


@dataclass(frozen=True)
class CanaryResult:
    """A check of the judge against its pin. ``status``: pass, drift, not pinned, stale pin
    (the items changed since the pin) or skipped (no LLM judge); the figures are NaN and the
    counts 0 where nothing was judged."""

    status: str
    judge: str
    message: str
    items: int = 0
    exact: float = math.nan
    kappa: float = math.nan
    changed: int = 0
    failed: int = 0
    tolerance: float = DEFAULT_TOLERANCE
    calls: int = 0
    seconds: float = 0.0
    served_models: dict[str, int] = field(default_factory=dict)
    pinned_served_models: dict[str, int] = field(default_factory=dict)
    pinned_at: str | None = None

    @property
    def warns(self) -> bool:
        return self.status == DRIFT

    def record(self) -> dict:
        """What a run keeps (``evads_run``) and its report shows: JSON-safe, NaN as None."""
        return {key: (None if isinstance(value, float) and math.isnan(value) else value)
                for key, value in asdict(self).items()}


def canary_path(env: Mapping[str, str] | None = None) -> Path:
    """``judge_canary.json`` beside the judge cache (``$EVADS_CACHE_DIR``)."""
    return default_cache_dir(env) / CANARY_FILE


def read_pins(path: Path) -> dict:
    """The pins of a canary file ({} when there is none); ValueError naming a bad file."""
    if not path.exists():
        return {}
    try:
        pins = json.loads(path.read_text(encoding="utf-8")).get("pins")
    except (json.JSONDecodeError, AttributeError):
        pins = None
    if not isinstance(pins, dict):
        raise ValueError(f"{path}: not a judge canary file (expected {{\"pins\": {{...}}}}); "
                         "move it away and pin again")
    return pins


def write_pin(path: Path, key: str, pin: dict) -> None:
    """Add or replace one pin, atomically (other judges' pins are kept)."""
    pins = {**read_pins(path), key: pin}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps({"pins": pins}, indent=2, ensure_ascii=False),
                       encoding="utf-8")
    partial.replace(path)


def _uncached_judge(env: Mapping[str, str] | None) -> HttpJudge | None:
    """The configured judge, bypassing the cache; None for the offline similarity judge."""
    judge = judge_from_env(env=env, cached=False)
    return judge if isinstance(judge, HttpJudge) else None


def pin(env: Mapping[str, str] | None = None) -> tuple[dict, Judged]:
    """Judge the items with the configured LLM judge and store the verdicts as its pin;
    JudgeConfigError without an LLM judge. Returns the pin and what judging it took."""
    items = load_items()
    judge = _uncached_judge(env)
    if judge is None:
        raise JudgeConfigError("the canary watches an LLM judge; the offline similarity judge "
                               "is deterministic and cannot drift: set EVADS_JUDGE_BASE_URL")
    try:
        judged = judge_items(judge, items)
        failed = [item_id for item_id, score in judged.verdicts.items() if score is None]
        if failed:
            raise JudgeConfigError(f"{judge.name} failed on {len(failed)} canary item(s) "
                                   f"({', '.join(failed[:3])}...): nothing pinned")
        settings = judge.settings()
        record = {"judge": judge.name, "model": settings.get("model"),
                  "endpoint": settings.get("endpoint"),
                  "protocol": settings.get("protocol", {}).get("name"),
                  "served_models": judged.served_models, "items_sha256": items_digest(),
                  "pinned_at": datetime.now(UTC).isoformat(timespec="seconds"),
                  "verdicts": judged.verdicts}
        write_pin(canary_path(env), pin_key(judge), record)
        return record, judged
    finally:
        judge.close()


def compare_to_pin(pinned: Mapping[str, float], now: Mapping[str, float | None],
                   limit: float) -> tuple[float, float, int, int, bool]:
    """(exact, kappa, changed, failed, drifted): the share of pinned items judged the same
    now (a failed verdict counts as changed), quadratic kappa over the items judged both
    times, and whether either fell below ``1 - limit``."""
    ids = list(pinned)
    failed = sum(now.get(i) is None for i in ids)
    both = [i for i in ids if now.get(i) is not None]
    same = sum(pinned[i] == now[i] for i in both)
    exact = same / len(ids) if ids else math.nan
    kappa = quadratic_kappa([pinned[i] for i in both], [now[i] for i in both])
    drifted = exact < 1 - limit or (not math.isnan(kappa) and kappa < 1 - limit)
    return exact, kappa, len(ids) - same, failed, drifted


def check(env: Mapping[str, str] | None = None) -> CanaryResult:
    """Judge the items again, bypassing the cache, and compare with the configured judge's
    pin (the result says whether it drifted; the caller warns). JudgeConfigError when the
    judge settings or the tolerance are bad; never judges without a pin."""
    limit = tolerance(env)
    judge = _uncached_judge(env)
    if judge is None:
        return CanaryResult(SKIPPED, "similarity", "the offline similarity judge is "
                            "deterministic: no canary", tolerance=limit)
    try:
        key = pin_key(judge)
        pinned = read_pins(canary_path(env)).get(key)
        if pinned is None:
            return CanaryResult(NOT_PINNED, judge.name, f"no canary pinned for {key} in "
                                f"{canary_path(env)}: run `python -m evads_tasks canary "
                                "--pin` once the judge is trusted", tolerance=limit)
        if pinned.get("items_sha256") != items_digest():
            return CanaryResult(STALE, judge.name, "the canary items changed since the pin "
                                f"of {pinned.get('pinned_at')}: pin again", tolerance=limit,
                                pinned_at=pinned.get("pinned_at"))
        judged = judge_items(judge, load_items())
    finally:
        judge.close()
    exact, kappa, changed, failed, drifted = compare_to_pin(pinned["verdicts"],
                                                            judged.verdicts, limit)
    served, before = judged.served_models, pinned.get("served_models") or {}
    figures = (f"{changed} of {len(pinned['verdicts'])} verdicts changed ({failed} failed); "
               f"exact {exact:.2f}, kappa {kappa:.2f} (tolerance {limit:g})")
    moved = ""
    if served and before and set(served) != set(before):
        moved = (f"; served as {', '.join(served)} now, as {', '.join(before)} when pinned on "
                 f"{pinned.get('pinned_at')}")
    result = CanaryResult(
        DRIFT if drifted else PASS, judge.name,
        (f"judge drift: {key} no longer judges the canary as when pinned on "
         f"{pinned.get('pinned_at')}: " if drifted else "judge as pinned: ") + figures + moved,
        items=len(pinned["verdicts"]), exact=exact, kappa=kappa, changed=changed,
        failed=failed, tolerance=limit, calls=judged.calls, seconds=judged.seconds,
        served_models=served, pinned_served_models=before, pinned_at=pinned.get("pinned_at"))
    return result


def summary(record: Mapping) -> str:
    """A canary record (:meth:`CanaryResult.record`) in one line, for reports."""
    status = record.get("status")
    if status in (PASS, DRIFT):
        return (f"{status}: {record.get('message')} ({record.get('calls')} call(s) in "
                f"{record.get('seconds', 0):.1f} s)")
    return f"{status}: {record.get('message')}"
