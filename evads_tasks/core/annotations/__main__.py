"""``python -m evads_tasks annotations summary PATH [--json]``: describe an annotation file."""

from __future__ import annotations

import argparse
import json
import sys

from .errors import AnnotationError
from .io import load_annotations
from .summary import format_summary, summarize


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evads_tasks annotations",
                                     description="Inspect E-VAds annotation files.")
    commands = parser.add_subparsers(dest="command", required=True)
    summary = commands.add_parser("summary", help="videos, questions, per task and category")
    summary.add_argument("path", help="parquet/JSONL/JSON file or a hub dataset id")
    summary.add_argument("--split", help="which split's files to read from a hub dataset")
    summary.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        records = load_annotations(args.path, split=args.split)
    except AnnotationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = summarize(records)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(format_summary(result, args.path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
