"""Counts that describe an annotation collection (pure: records in, numbers out)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from .record import EvadsRecord
from .task_labels import TASK_CODES


def summarize(records: Sequence[EvadsRecord]) -> dict:
    per_task = Counter(r.task for r in records)
    return {
        "videos": len({r.video_id for r in records}),
        "questions": len(records),
        "per_task": {code: per_task.get(code, 0) for code in TASK_CODES},
        "per_category": dict(Counter(r.category or "unknown" for r in records).most_common()),
        "per_split": dict(Counter(r.split for r in records)),
        "inferred_share": (sum(r.task_inferred for r in records) / len(records)
                           if records else 0.0),
    }


def format_summary(summary: dict, source: str) -> str:
    """A Markdown summary a person can read."""
    lines = [f"# E-VAds annotations: {source}", "",
             f"- videos: {summary['videos']}", f"- questions: {summary['questions']}",
             f"- splits: {', '.join(f'{k} ({v})' for k, v in summary['per_split'].items())}",
             f"- inferred task labels: {summary['inferred_share']:.1%}", "",
             "| task | questions |", "|---|---:|"]
    lines += [f"| {code} | {n} |" for code, n in summary["per_task"].items()]
    lines += ["", "| product category | questions |", "|---|---:|"]
    lines += [f"| {cat} | {n} |" for cat, n in summary["per_category"].items()]
    return "\n".join(lines)
