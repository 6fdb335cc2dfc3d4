"""The generator's exit status: a run whose replies failed is not a success.

Why: a small model whose every role reply failed validation wrote 0 questions and exited 0,
so a script saw success. Like the judge's ``EVADS_MAX_JUDGE_ERROR_RATE``, the run writes
everything it has, then exits ``EXIT_REPLY_ERRORS`` when more than ``--max-reply-error-rate``
of the role replies failed (any kind: call, context length, refusal, truncated or invalid
JSON, schema), or when usable videos gave no question at all, with the counts by kind and
the first error on its last line.
"""

from __future__ import annotations

EXIT_FATAL = 2           # usage, configuration, or a failure no retry mends
EXIT_RETRY = 3           # some videos had failed calls: rerun to finish them
EXIT_REPLY_ERRORS = 4    # too many role replies failed, or no question came out
DEFAULT_MAX_REPLY_ERROR_RATE = 0.25


def reply_failure(summary: dict, max_rate: float) -> str | None:
    """The one-line failure of a run (``report.summarize``'s figures), else None."""
    replies, errors = summary["replies"], summary["reply_errors"]
    failed = sum(errors.values())
    counts = ", ".join(f"{kind} {n}" for kind, n in sorted(errors.items(),
                                                          key=lambda item: -item[1]))
    first = summary.get("first_reply_error") or "?"
    if replies and failed / replies > max_rate:
        return (f"{failed} of {replies} role replies failed ({failed / replies:.0%}, above "
                f"--max-reply-error-rate {max_rate:g}): {counts}; first error: {first}")
    videos = summary["videos"]
    usable = videos["total"] - videos["unusable"]
    if usable and not summary["run"]["questions"] and not videos["retry"]:
        detail = f"; failed role replies: {counts}; first error: {first}" if failed else ""
        return (f"no question was written for {usable} usable video(s) (see the report's "
                f"rejection reasons){detail}")
    return None
