"""CLI: judge a JSONL file of requests with the judge configured in the environment.

Each input line holds the ``JudgeRequest`` fields (question, metadata, clues, reference,
answer, optional rubric). Verdicts go to the on-disk cache as they arrive, so an interrupted
run, started again, only pays for what is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, fields
from pathlib import Path

from .api import JudgeConfigError, JudgeRequest
from .config import HOW_TO_CONFIGURE, judge_from_env

_FIELDS = {f.name for f in fields(JudgeRequest)}


def read_requests(path: Path) -> list[JudgeRequest]:
    """Requests from JSONL; a bad line raises ValueError naming the file, line and field."""
    requests = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not JSON ({error})") from error
            missing = sorted(_FIELDS - {"rubric"} - set(row))
            if missing:
                raise ValueError(f"{path}:{number}: missing field(s) {missing}")
            try:
                requests.append(JudgeRequest(**{k: row[k] for k in _FIELDS if k in row}))
            except (TypeError, ValueError) as error:
                raise ValueError(f"{path}:{number}: {error}") from error
    return requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evads_tasks.judge", description=__doc__,
                                     epilog=HOW_TO_CONFIGURE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=Path, required=True, help="input JSONL")
    parser.add_argument("--out", type=Path, required=True, help="output JSONL, one result a "
                        "line in input order")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="judge cache (default: $EVADS_CACHE_DIR or ~/.cache/evads/judge)")
    args = parser.parse_args(argv)
    try:
        requests = read_requests(args.requests)
        judge = judge_from_env(args.cache_dir)
    except (ValueError, JudgeConfigError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    results = judge.judge_many(requests)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as handle:
        for result in results:
            handle.write(json.dumps(asdict(result), ensure_ascii=False) + "\n")
    failed = sum(result.score is None for result in results)
    print(f"{judge.name}: {len(results) - failed} judged, {failed} failed, "
          f"{sum(r.cached for r in results)} from cache -> {args.out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
