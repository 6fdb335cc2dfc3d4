"""CLI: judge a JSONL file of requests with the judge configured in the environment.

Each input line holds the ``JudgeRequest`` fields (question, metadata, clues, reference,
answer, optional rubric). Verdicts go to the on-disk cache as they arrive, so an interrupted
run, started again, only pays for what is missing. Before the run, one timed call (the first
request still to judge; its verdict is the run's) projects the run's wall time and warns
when calls would pass the timeout; --dry-run stops there. Exit status: 0; 1 when --out or the
judge cache could not be written (a full or read-only disk: an ``error:`` line names the file
and how to resume; the verdicts written before are kept); 2 for bad input or settings (a
damaged or read-only cache is found here, before any call); 3 (after writing the verdicts)
when the judge failed on more than $EVADS_MAX_JUDGE_ERROR_RATE (default 0.02) of the judged
answers (an empty answer the protocol scores by rule is not judged; the official protocol
judges it), the count and the first error on the last line.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, fields
from pathlib import Path

from ..chat.preflight import preflight_lines
from ..write_failure import EXIT_WRITE_FAILED, write_failure
from .api import Judge, JudgeConfigError, JudgeRequest
from .config import (
    HOW_TO_CONFIGURE,
    TIMEOUT_ENV,
    add_protocol_flag,
    apply_protocol_flag,
    judge_from_env,
    judge_protocol,
)
from .error_rate import EXIT_JUDGE_ERRORS, JudgeErrorTally, max_judge_error_rate
from .http_judge import HttpJudge
from .protocols import JudgeProtocol

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
    parser = argparse.ArgumentParser(prog="python -m evads_tasks judge", description=__doc__,
                                     epilog=HOW_TO_CONFIGURE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=Path, help="input JSONL")
    parser.add_argument("--out", type=Path, help="output JSONL, one result a line in input "
                        "order")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="judge cache (default: $EVADS_CACHE_DIR or ~/.cache/evads/judge)")
    add_protocol_flag(parser)
    parser.add_argument("--which", action="store_true",
                        help="print the judge and protocol the settings select, then exit")
    parser.add_argument("--dry-run", action="store_true",
                        help="count the calls left and make the one timed call, then exit "
                             "(its verdict goes to the cache; nothing else is written)")
    parser.add_argument("--no-preflight", action="store_true",
                        help="skip the timed call before the run")
    args = parser.parse_args(argv)
    apply_protocol_flag(args.protocol)
    if args.which:
        return _which(args.cache_dir)
    if args.requests is None or (args.out is None and not args.dry_run):
        parser.error("--requests and --out are required (or --which)")
    try:
        requests = read_requests(args.requests)
        max_rate = max_judge_error_rate()
        judge = judge_from_env(args.cache_dir)
    except (ValueError, JudgeConfigError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    protocol = judge_protocol()
    try:
        if isinstance(judge, HttpJudge):
            _preflight(judge, requests, protocol, timed=not args.no_preflight)
        if args.dry_run:
            return 0
        results = judge.judge_many(requests)
    finally:
        _close(judge)
    problem = getattr(judge, "problem", None)
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w", encoding="utf-8") as handle:
            for result in results:
                handle.write(json.dumps(asdict(result), ensure_ascii=False) + "\n")
    except OSError as error:
        problem = write_failure(error, args.out, "the verdicts in the judge cache are kept: "
                                "free space (or pass another --out) and rerun the same command")
    tally = JudgeErrorTally()
    for request, result in zip(requests, results, strict=True):
        tally.add(result, judged=not protocol.by_rule(request))
    for note in judge.settings().get("server_notes") or ():
        print(f"note: {note}", file=sys.stderr)
    print(f"{judge.name}: {tally.judged - tally.errors} judged, {tally.errors} failed, "
          f"{sum(r.cached for r in results)} from cache, {len(results) - tally.judged} scored "
          f"by rule -> {args.out}", file=sys.stderr)
    if problem:
        tally.problem(problem)
    if (failure := tally.failure(max_rate)) is not None:
        print("\n".join(f"error: {line}" for line in failure.splitlines()), file=sys.stderr)
        return EXIT_WRITE_FAILED if problem else EXIT_JUDGE_ERRORS
    return 0


def _preflight(judge: HttpJudge, requests: list[JudgeRequest], protocol: JudgeProtocol,
               timed: bool) -> None:
    """Print what is left to judge and, unless ``timed`` is False, time the first call."""
    pending = [request for request in requests if judge.calls_for(request)]
    by_rule = sum(protocol.by_rule(request) for request in requests)
    print(f"{judge.name}: {len(requests)} requests, {by_rule} scored by rule, "
          f"{len(requests) - by_rule - len(pending)} in the cache, {len(pending)} to judge",
          file=sys.stderr)
    if pending and timed:
        timing = judge.preflight(pending[0])
        print("\n".join(preflight_lines(judge.name, timing, len(pending), judge.concurrency,
                                         judge.timeout_s, TIMEOUT_ENV)), file=sys.stderr)


def _close(judge: Judge) -> None:
    close = getattr(judge, "close", None)
    if close is not None:
        close()


def describe(judge: Judge) -> str:
    """One line: the judge, the protocol, and the official script's sha256 when used."""
    protocol = judge_protocol()
    script = protocol.script
    return (f"judge: {judge.name}; protocol: {protocol.name}"
            + (f" (authors' script {script.path}, sha256 {script.sha256})" if script else ""))


def _which(cache_dir: Path | None) -> int:
    try:
        judge = judge_from_env(cache_dir)
    except JudgeConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(describe(judge))
    _close(judge)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
