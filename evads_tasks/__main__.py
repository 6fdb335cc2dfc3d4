"""``python -m evads_tasks path``: the lmms-eval include path; ``report DIR``: a run summary."""

from __future__ import annotations

import argparse
import sys

from .tasks import INCLUDE_PATH


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m evads_tasks",
        description="E-VAds as an lmms-eval task suite: "
                    'lmms-eval --tasks evads --include_path "$(python -m evads_tasks path)"')
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("path", help="print the folder to pass to lmms-eval --include_path")
    report = commands.add_parser("report", help="write a Markdown summary of an lmms-eval run")
    report.add_argument("results_dir", help="the --output_path of an lmms-eval run with "
                                            "--log_samples")
    report.add_argument("--out", help="where to write the Markdown (default: beside the "
                                      "results JSON, as evads_report.md)")
    report.add_argument("--since", type=float, metavar="UNIX_TIME",
                        help="only a run whose results were written at or after this time "
                             "(e.g. $(date +%%s) taken before lmms-eval started): fails when "
                             "that run left none")
    args = parser.parse_args(argv)
    if args.command == "path":
        print(INCLUDE_PATH)
        return 0
    from .run_report import write_report

    try:
        path = write_report(args.results_dir, args.out, args.since)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path.read_text(encoding="utf-8"))
    print(f"report written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
