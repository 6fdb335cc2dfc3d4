"""``python -m evads_tasks``: ``path`` (the lmms-eval include path), ``report`` (a run's
Markdown + PNG summary, also of the authors' ``final_results.csv``), ``compare A B``,
``rescore RUN --out DIR`` (a finished run's predictions judged again, no model loaded),
``canary --pin|--check`` (the judge drift canary), ``audit RUN [RUN ...] --out DIR`` (does
the answer need the video? the modality conditions compared), ``annotations ...``
(``summary`` of an annotation file) and ``judge ...`` (the judge on a file of requests, or
``--which``), the last two handed to their packages' own CLIs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .core.write_failure import EXIT_WRITE_FAILED, WriteFailed, writing
from .tasks import INCLUDE_PATH

# Subcommands that are their packages' own CLIs, with the help line shown here.
PASSED_ON = {
    "annotations": "summary FILE [--json]: videos and questions per task and category of an "
                   "annotation file (python -m evads_tasks annotations --help)",
    "judge": "judge a JSONL file of requests, or --which: the judge a run would use "
             "(python -m evads_tasks judge --help)",
}


def _pass_on(command: str, argv: list[str]) -> int:
    if command == "annotations":
        from .core.annotations.__main__ import main as annotations_main

        return annotations_main(argv)
    from .core.judge.__main__ import main as judge_main

    return judge_main(argv)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evads_tasks",
        description="E-VAds as an lmms-eval task suite: "
                    'lmms-eval --tasks evads --include_path "$(python -m evads_tasks path)"')
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("path", help="print the folder to pass to lmms-eval --include_path")
    for name, about in PASSED_ON.items():
        commands.add_parser(name, help=about, add_help=False)
    report = commands.add_parser(
        "report", help="write a Markdown + PNG summary of an lmms-eval run, or of the "
                       "authors' script output (--official-results)")
    report.add_argument("results_dir", nargs="?",
                        help="the --output_path of an lmms-eval run with --log_samples")
    report.add_argument("--official-results", metavar="FINAL_RESULTS",
                        help="the final_results.csv (or .json) the authors' evaluation "
                             "script wrote, instead of a run folder")
    report.add_argument("--out", help="where to write the Markdown (default: beside the "
                                      "results, as evads_report.md; the PNG goes beside it)")
    report.add_argument("--since", type=float, metavar="UNIX_TIME",
                        help="only a run whose results were written at or after this time "
                             "(e.g. $(date +%%s) taken before lmms-eval started): fails when "
                             "that run left none")
    compare = commands.add_parser(
        "compare", help="two runs side by side: B - A per task and overall with paired "
                        "95%% intervals over videos and p-values, means, per-question and "
                        "judge agreement")
    for name in ("a", "b"):
        compare.add_argument(name, metavar=name.upper(),
                             help="an lmms-eval run folder or an authors' final_results.csv")
    compare.add_argument("--out", help="also write the Markdown here")
    _add_rescore(commands)
    canary = commands.add_parser(
        "canary", help="the judge drift canary: --pin the configured judge's verdicts on the "
                       "shipped canary items, or --check that it still gives them")
    which = canary.add_mutually_exclusive_group(required=True)
    which.add_argument("--pin", action="store_true",
                       help="judge the items and store the verdicts beside the judge cache "
                            "($EVADS_CACHE_DIR/judge_canary.json), replacing this judge's pin")
    which.add_argument("--check", action="store_true",
                       help="judge the items again, bypassing the cache; exit 4 with the "
                            "figures when more than $EVADS_CANARY_TOLERANCE (default 0.1) "
                            "of agreement (exact or kappa) is lost")
    canary.add_argument("--protocol", metavar="{evads,official}",
                        help="how the judge is asked and read (default: $EVADS_PROTOCOL, "
                             "else evads)")
    _add_audit(commands)
    return parser


def _add_audit(commands: argparse._SubParsersAction) -> None:
    from .core.without_video import THRESHOLD
    from .tasks.ablation import WITHOUT_VIDEO

    audit = commands.add_parser(
        "audit", help="does the answer need the video? Blind Gap, Visual Gain and shortcut "
                      "share of runs of the modality conditions (evads, evads_textonly, "
                      "evads_blind, evads_videoonly, evads_oneframe), with intervals over "
                      "videos; --export-filter: the questions answerable without the video")
    audit.add_argument("runs", nargs="+", metavar="RUN",
                       help="lmms-eval run folders (--log_samples) of the conditions, one per "
                            "condition or one holding several, rescores of them, or the "
                            "authors' final_results.csv (the full condition), e.g. RUN_FULL "
                            "RUN_TEXT RUN_BLIND")
    audit.add_argument("--out", required=True, metavar="DIR",
                       help="the folder for audit_report.md/.png, audit_questions.csv and "
                            "audit.json")
    audit.add_argument("--export-filter", metavar="FILE",
                       help="also write the ids of the questions answerable without the "
                            "video (score >= --threshold under --filter-condition), for "
                            "make rl EXCLUDE=FILE")
    audit.add_argument("--threshold", type=float, default=THRESHOLD,
                       help=f"the filter's score threshold (default {THRESHOLD:g}, recorded "
                            "in the file)")
    audit.add_argument("--filter-condition", choices=WITHOUT_VIDEO, default=WITHOUT_VIDEO[0],
                       help="the run the filter reads (default textonly: the protocol's text, "
                            "no video; blind: the question alone)")


def _add_rescore(commands: argparse._SubParsersAction) -> None:
    rescore = commands.add_parser(
        "rescore", help="judge a finished run's logged predictions again with the judge "
                        "configured now (no model is loaded), written as a run")
    rescore.add_argument("run", metavar="RUN",
                         help="an lmms-eval run folder (--log_samples), a rescore's folder, "
                              "or the authors' final_results.csv (or .json)")
    rescore.add_argument("--out", required=True, metavar="NEW_DIR",
                         help="the folder to write results, samples and report to (rerun "
                              "the same command to resume a killed rescore)")
    rescore.add_argument("--protocol", metavar="{evads,official}",
                         help="how the judge is asked and read (default: $EVADS_PROTOCOL, "
                              "else evads)")
    rescore.add_argument("--annotations", metavar="FILE",
                         help="the run's dataset (default: $EVADS_ANNOTATIONS), for a "
                              "--predict_only run (its samples keep no question ids) and for "
                              "samples logged without the judge's inputs")
    rescore.add_argument("--dry-run", action="store_true",
                         help="count the judge calls left, estimate their tokens and make "
                              "the one timed call (its verdict goes to the judge cache); "
                              "write nothing else")
    rescore.add_argument("--no-preflight", action="store_true",
                         help="skip the timed judge call before the run")
    rescore.add_argument("--fresh", action="store_true",
                         help="start over in an --out folder that holds another rescore")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in PASSED_ON:
        return _pass_on(argv[0], argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "path":
        print(INCLUDE_PATH)
        return 0
    try:
        if args.command == "compare":
            return _compare(args)
        if args.command == "rescore":
            from .runs.rescore import main as rescore

            return rescore(args)
        if args.command == "canary":
            return _canary(args)
        if args.command == "audit":
            return _audit(args)
        return _report(parser, args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except WriteFailed as exc:  # report or compare could not write what it made
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_WRITE_FAILED


EXIT_DRIFT = 4


def _canary(args: argparse.Namespace) -> int:
    """``canary --pin``: 0 once pinned; ``--check``: 0 when the judge gives its pinned
    verdicts, 4 when it drifted; 2 without a pin or a usable judge."""
    from .core.judge.api import JudgeConfigError
    from .core.judge.canary import PASS, load_items, pin
    from .core.judge.canary import check as check_canary
    from .core.judge.config import apply_protocol_flag

    apply_protocol_flag(args.protocol)
    try:
        if args.pin:
            record, judged = pin()
            levels = {item.id: item.level for item in load_items()}
            agree = sum(record["verdicts"][i] == level for i, level in levels.items())
            print(f"pinned {len(record['verdicts'])} canary verdicts of {record['judge']} "
                  f"(protocol {record['protocol']}; served as "
                  f"{', '.join(record['served_models']) or 'not reported'}): "
                  f"{judged.calls} call(s) in {judged.seconds:.1f} s, "
                  f"{judged.prompt_tokens:,} + {judged.completion_tokens:,} tokens; "
                  f"{agree} of {len(levels)} at the level their answer was written for")
            return 0
        result = check_canary()
    except JudgeConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if result.warns:
        print(f"WARNING: {result.message}", file=sys.stderr)
        return EXIT_DRIFT
    if result.status != PASS:
        print(f"error: {result.message}", file=sys.stderr)
        return 2
    print(f"{result.message} ({result.calls} call(s) in {result.seconds:.1f} s)")
    return 0


def _report(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .runs.report import write_official_report, write_report

    if (args.results_dir is None) == (args.official_results is None):
        parser.error("report takes a run folder or --official-results FILE (one of them)")
    if args.official_results:
        path = write_official_report(args.official_results, args.out)
    else:
        path = write_report(args.results_dir, args.out, args.since)
    print(path.read_text(encoding="utf-8"))
    print(f"report written to {path}", file=sys.stderr)
    return 0


def _audit(args: argparse.Namespace) -> int:
    from .runs.audit import write_audit

    path = write_audit(args.runs, args.out, args.export_filter, args.threshold,
                       args.filter_condition, progress=lambda line: print(line, file=sys.stderr))
    print(path.read_text(encoding="utf-8"))
    print(f"audit written to {path} (per question: {path.with_name('audit_questions.csv')})",
          file=sys.stderr)
    if args.export_filter:
        print(f"filter written to {args.export_filter}", file=sys.stderr)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .runs.compare import compare_runs, format_comparison
    from .runs.scored_runs import load_scored

    a, b = load_scored(args.a), load_scored(args.b)
    comparison = compare_runs(a, b)
    text = format_comparison(a, b, comparison)
    if args.out:
        with writing(args.out, "free space or pass another --out"):
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            text += _confusion_png(comparison, Path(args.out).with_suffix(".png"))
            Path(args.out).write_text(text, encoding="utf-8")
        print(f"comparison written to {args.out}", file=sys.stderr)
    print(text)
    return 0


def _confusion_png(comparison: dict, path: Path) -> str:
    """Draw the confusion matrix of the two runs' scores; the Markdown line showing it."""
    from .core.agreement import draw_confusion
    from .runs.compare import judged_pairs

    xs, ys = judged_pairs(comparison)
    drawn = draw_confusion(xs, ys, path, f"E-VAds scores of {len(xs)} questions judged in "
                                         "both runs: A (rows) by B (columns)")
    if drawn is None:
        return ""
    print(f"confusion matrix drawn to {drawn}", file=sys.stderr)
    return f"\n![confusion matrix: A's scores (rows) by B's (columns)]({drawn.name})\n"


if __name__ == "__main__":
    sys.exit(main())
