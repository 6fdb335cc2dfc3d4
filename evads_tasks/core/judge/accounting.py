"""What judging cost: tokens, calls, money, and which model the server really answered as.

Why: the judge is a paid API, and ``qwen-plus`` is an alias its provider re-points at new
snapshots. Every verdict carries the token usage of the replies behind it (from each
response's ``usage``, kept in the judge cache so a cached verdict still knows them) and the
model name the server reported. This module turns those per-verdict records into totals per
task and per run (pure functions), prices them with ``$EVADS_JUDGE_PRICE``
(``IN_PER_1M,OUT_PER_1M``: the price of a million prompt and completion tokens), and warns
when the served model changes within a run.

Tokens of this run's calls and tokens of verdicts taken from the cache are kept apart: the
first is what the run paid, the sum of both what judging it all afresh would cost.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..markdown import markdown_text

if TYPE_CHECKING:  # the judge package imports this module (ServedModels): no cycle at run time
    from .api import JudgeResult

logger = logging.getLogger(__name__)

PRICE_ENV = "EVADS_JUDGE_PRICE"
_COUNTS = ("verdicts", "calls", "cached", "prompt_tokens", "completion_tokens",
           "cached_prompt_tokens", "cached_completion_tokens", "without_usage")


@dataclass(frozen=True)
class Price:
    """The judge's price per million prompt (input) and completion (output) tokens."""

    input_per_1m: float
    output_per_1m: float

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        return (prompt_tokens * self.input_per_1m + completion_tokens * self.output_per_1m) / 1e6


def judge_price(env: Mapping[str, str] | None = None) -> Price | None:
    """``$EVADS_JUDGE_PRICE`` as a Price (None when unset); JudgeConfigError when it is not
    two non-negative numbers ``IN_PER_1M,OUT_PER_1M``."""
    from .api import JudgeConfigError

    env = os.environ if env is None else env
    text = (env.get(PRICE_ENV) or "").strip()
    if not text:
        return None
    parts = [part.strip() for part in text.split(",")]
    try:
        values = [float(part) for part in parts]
    except ValueError:
        values = []
    if len(values) != 2 or any(not value >= 0 for value in values):
        raise JudgeConfigError(f"{PRICE_ENV} must be IN_PER_1M,OUT_PER_1M (the price of a "
                               f"million prompt and completion tokens, e.g. 0.8,2), got {text!r}")
    return Price(*values)


def usage_record(result: JudgeResult, requested_model: str | None) -> dict:
    """One verdict's accounting, as a logged sample keeps it."""
    return {"requested_model": requested_model, "served_model": result.served_model,
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens, "cached": result.cached,
            "calls": result.calls}


def usage_totals(records: Iterable[Mapping]) -> dict:
    """Totals over per-verdict records (:func:`usage_record`): verdicts, HTTP calls, cache
    hits, tokens of this run's replies, tokens of cached verdicts, verdicts whose replies
    carried no usage, the models requested and, per served model, its verdicts."""
    totals: dict = dict.fromkeys(_COUNTS, 0)
    requested: set[str] = set()
    served: Counter = Counter()
    for record in records:
        totals["verdicts"] += 1
        totals["calls"] += int(record.get("calls") or 0)
        cached = bool(record.get("cached"))
        totals["cached"] += cached
        prefix = "cached_" if cached else ""
        prompt, completion = record.get("prompt_tokens"), record.get("completion_tokens")
        if prompt is None and completion is None:
            totals["without_usage"] += cached or bool(record.get("calls"))
        totals[prefix + "prompt_tokens"] += int(prompt or 0)
        totals[prefix + "completion_tokens"] += int(completion or 0)
        if record.get("requested_model"):
            requested.add(str(record["requested_model"]))
        if record.get("served_model"):
            served[str(record["served_model"])] += 1
    totals["requested_models"] = sorted(requested)
    totals["served_models"] = dict(sorted(served.items()))
    return totals


def merge_totals(parts: Sequence[Mapping]) -> dict:
    """Totals of several tasks (:func:`usage_totals` results) added up."""
    merged: dict = dict.fromkeys(_COUNTS, 0)
    requested: set[str] = set()
    served: Counter = Counter()
    for part in parts:
        if not isinstance(part, Mapping):
            continue
        for key in _COUNTS:
            merged[key] += int(part.get(key) or 0)
        requested.update(part.get("requested_models") or [])
        served.update(part.get("served_models") or {})
    merged["requested_models"] = sorted(requested)
    merged["served_models"] = dict(sorted(served.items()))
    return merged


def priced(totals: Mapping, price: Price | None) -> dict:
    """``totals`` plus ``price`` and, when priced, ``cost`` (this run's calls) and
    ``cost_uncached`` (every verdict, cached ones too: judging it all afresh)."""
    out = dict(totals)
    out["price_per_1m"] = None if price is None else [price.input_per_1m, price.output_per_1m]
    if price is not None:
        out["cost"] = price.cost(totals["prompt_tokens"], totals["completion_tokens"])
        out["cost_uncached"] = price.cost(
            totals["prompt_tokens"] + totals["cached_prompt_tokens"],
            totals["completion_tokens"] + totals["cached_completion_tokens"])
    return out


def served_model_warning(totals: Mapping) -> str | None:
    """The warning when a run's verdicts come from more than one served model, else None."""
    served = totals.get("served_models") or {}
    if len(served) < 2:
        return None
    seen = ", ".join(f"{name} ({count})" for name, count in served.items())
    return (f"the judge server answered as {len(served)} different models in this run "
            f"({seen}; requested {', '.join(totals.get('requested_models') or ['?'])}): "
            "its alias was probably re-pointed, so these verdicts mix two judges")


class ServedModels:
    """Watches the model names a server reports for one judge and logs a WARNING the first
    time a name differs from the one it answered with before (a silently updated alias)."""

    def __init__(self, judge: str) -> None:
        self.judge = judge
        self._seen: list[str] = []
        self._lock = threading.Lock()

    def observe(self, served: str | None) -> None:
        if not served:
            return
        with self._lock:
            if served in self._seen:
                return
            self._seen.append(served)
            first = self._seen[0]
        if served != first:
            logger.warning("WARNING: judge %s: the server now answers as model %r, earlier "
                           "as %r: its alias changed within this run", self.judge, served,
                           first)


def format_tokens(totals: Mapping, price: Price | None = None) -> str:
    """One line: calls, tokens of this run and of cached verdicts, and cost when priced."""
    text = (f"{totals['calls']} call(s), {totals['cached']} of {totals['verdicts']} "
            f"verdict(s) from the cache; this run's tokens: {totals['prompt_tokens']:,} prompt "
            f"+ {totals['completion_tokens']:,} completion; cached verdicts' tokens: "
            f"{totals['cached_prompt_tokens']:,} + {totals['cached_completion_tokens']:,}")
    if totals.get("without_usage"):
        text += f"; {totals['without_usage']} verdict(s) without token usage"
    if price is not None:
        costs = priced(totals, price)
        text += (f"; cost {costs['cost']:.4f} (all verdicts afresh: "
                 f"{costs['cost_uncached']:.4f}) at {price.input_per_1m:g} / "
                 f"{price.output_per_1m:g} per 1M tokens")
    return text


def usage_section(rows: Mapping[str, Mapping], price: Price | None) -> list[str]:
    """The report's Markdown on judging cost: one table row per task (``rows``: label ->
    :func:`usage_totals`, the last one the whole run), requested and served models, and the
    served-model warning (server-given names escaped: :func:`markdown_text`). Empty when no
    verdict recorded usage (the authors' output, runs
    logged before evads recorded it) and for a judge that makes no call (the offline
    similarity judge)."""
    if not rows:
        return []
    overall = list(rows.values())[-1]
    if not any(overall.get(key) for key in ("calls", "cached", "prompt_tokens",
                                            "completion_tokens", "cached_prompt_tokens",
                                            "served_models")):
        return []
    served = ", ".join(f"{markdown_text(name)} ({count})" for name, count in
                       (overall.get("served_models") or {}).items()) or "not reported"
    requested = ", ".join(map(markdown_text, overall.get("requested_models") or ["?"]))
    lines = ["## Judge usage", "",
             f"- requested model(s): {requested}; served model(s), with their verdicts: "
             f"{served}"]
    if warning := served_model_warning(overall):
        lines.append(f"- **WARNING: {markdown_text(warning)}**")
    lines += ["- calls: HTTP calls made for these verdicts when they were judged (0 for a "
              "verdict taken from the cache); tokens from each response's `usage`, this "
              "run's calls apart from the verdicts taken from the cache (paid earlier)"]
    if price is not None:
        lines.append(f"- cost at {price.input_per_1m:g} / {price.output_per_1m:g} per million "
                     f"prompt / completion tokens (${PRICE_ENV}); afresh: every verdict paid "
                     "again, cached ones too")
    else:
        lines.append(f"- cost: set {PRICE_ENV}=IN_PER_1M,OUT_PER_1M to price the tokens")
    header = ("| | verdicts | calls | from cache | prompt tokens | completion tokens | "
              "cached prompt tokens | cached completion tokens |")
    rule = "|---|" + "---:|" * 7
    if price is not None:
        header, rule = header + " cost | cost afresh |", rule + "---:|---:|"
    lines += ["", header, rule]
    for label, totals in rows.items():
        cells = [totals["verdicts"], totals["calls"], totals["cached"],
                 f"{totals['prompt_tokens']:,}", f"{totals['completion_tokens']:,}",
                 f"{totals['cached_prompt_tokens']:,}", f"{totals['cached_completion_tokens']:,}"]
        if price is not None:
            costs = priced(totals, price)
            cells += [f"{costs['cost']:.4f}", f"{costs['cost_uncached']:.4f}"]
        lines.append(f"| {label} | " + " | ".join(map(str, cells)) + " |")
    if without := overall.get("without_usage"):
        lines += ["", f"- {without} verdict(s) carried no token usage (the server sent none, "
                      "the call failed, or the cached verdict predates usage recording)"]
    return [*lines, ""]
