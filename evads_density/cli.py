"""``python -m evads_density PATH --out DIR``: density of a video folder or annotation file.

Exit status: 0; 1 when an output could not be written (a full or read-only disk: the last
line names the file; the rows written before are kept, rerun to resume); 2 for a usage or
input error (nothing written); 3 when some videos failed (their rows say why).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evads_tasks.core.annotations import AnnotationError
from evads_tasks.core.write_failure import EXIT_WRITE_FAILED, WriteFailed, writing

from .analysis import MIN_SIDE, OCR_CHOICES, Settings, check_backends
from .asr import (
    ASR_CHOICES,
    DEFAULT_MODEL,
    HUB_EXAMPLES,
    LANGUAGE_HELP,
    OPENAI_WHISPER_NEEDS_MODEL,
    TINY_EN,
)
from .availability import DEVICES_HELP, BackendUnavailable, check_device
from .features import DINOV3_BASE
from .metrics import VdenSettings
from .ocr import OCR_COUNT_POLICIES
from .report import backends_used, write_reports
from .runner import EXECUTORS, RESUME, run
from .sources import SOURCES, Collection, collect_jobs

EXIT_FAILED_VIDEOS = 3


def checked_number(kind: type, low: float, strict: bool = True, high: float | None = None):
    """An argparse type: a ``kind`` number above ``low`` (or at least, when not strict)."""
    bound = f"> {low:g}" if strict else f">= {low:g}"
    if high is not None:
        bound += f" and <= {high:g}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if (value <= low if strict else value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    return parse


def _device(text: str) -> str:
    """An argparse type: a torch device that exists here (``cuda`` without a GPU is refused)."""
    try:
        return check_device(text)
    except BackendUnavailable as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each default, except None: the help text says what leaving it out means."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    d = Settings()   # the one place the defaults live
    p = argparse.ArgumentParser(
        prog="python -m evads_density",
        description="Vden/Aden/Oden of short videos, from the videos or from E-VAds annotations.",
        formatter_class=HelpFormatter)
    p.add_argument("path", help="a folder of videos, an annotation file, or a hub dataset id")
    p.add_argument("--out", required=True, type=Path, help="output folder (resumed if present)")
    p.add_argument("--source", choices=SOURCES, default="auto",
                   help="auto: video for a folder; both for an annotation file whose videos are "
                        "found (see --video-dir); else annotations")
    p.add_argument("--video-dir", help="video root for an annotation file (default: "
                   "$EVADS_VIDEO_DIR, else videos/ beside its annotations/ folder or beside "
                   "the file, when present)")
    p.add_argument("--split", help="which split's files to read from a hub dataset")
    g = p.add_argument_group("Vden")
    g.add_argument("--fps", type=checked_number(float, 0), default=d.vden.fps,
                   help="sampled frames per second")
    g.add_argument("--window", type=checked_number(int, 1, strict=False), default=d.vden.window,
                   help="neighbours on each side, counted in sampled frames")
    g.add_argument("--decay", type=checked_number(float, 0, strict=False), default=d.vden.decay,
                   help="neighbour weight 1/d**decay")
    g.add_argument("--alpha", type=checked_number(float, 0), default=d.vden.alpha,
                   help="scale of mean(1 - S_i)")
    g.add_argument("--visual-model", default=d.visual_model,
                   help=f"auto ({DINOV3_BASE} when cached locally, else offline-pixels), "
                        "offline-pixels, or a transformers model id / folder")
    g = p.add_argument_group("speech and screen text")
    g.add_argument("--asr", choices=ASR_CHOICES, default=d.asr,
                   help="speech recognizer for Aden; none: Aden 0")
    g.add_argument("--asr-model", default=d.asr_model,
                   help=f"faster-whisper: nothing or {DEFAULT_MODEL} = Whisper base, "
                        f"multilingual, bundled (offline, sha256-checked); {TINY_EN} = bundled, "
                        f"English only; {HUB_EXAMPLES} = downloaded by faster-whisper; or a "
                        "local CTranslate2 folder. openai-whisper: model name or .pt checkpoint "
                        "(required)")
    g.add_argument("--asr-language", default=d.asr_language,
                   help=f"{LANGUAGE_HELP}; Chinese comes out in Simplified characters")
    g.add_argument("--ocr", choices=OCR_CHOICES, default=d.ocr)
    g.add_argument("--ocr-fps", type=checked_number(float, 0), default=d.ocr_fps,
                   help="times per second the screen is OCR'd")
    g.add_argument("--ocr-change-threshold", type=checked_number(float, 0, strict=False, high=1),
                   default=d.ocr_change_threshold,
                   help="OCR a frame only when its thumbnail differs from the last OCR'd one "
                        "by more than this (mean abs difference, 0..1)")
    g.add_argument("--ocr-count", choices=OCR_COUNT_POLICIES, default=d.ocr_count,
                   help="per-second: text counts every second it is on screen (matches the "
                        "paper); unique: once per appearance")
    g = p.add_argument_group("scale and robustness")
    g.add_argument("--max-seconds", type=checked_number(float, 0), default=d.max_seconds,
                   help="analyse at most this many seconds of each video")
    g.add_argument("--max-side", type=checked_number(int, MIN_SIDE, strict=False),
                   default=d.max_side,
                   help="decode frames to this long side")
    g.add_argument("--device", type=_device, default=d.device,
                   help=f"device for the models: {DEVICES_HELP} (a GPU must be present)")
    g.add_argument("--workers", type=checked_number(int, 1, strict=False), default=1,
                   help="worker processes / Ray actors")
    g.add_argument("--backend", choices=EXECUTORS, default="local",
                   help="local processes or a Ray cluster (ray.init() finds or starts one)")
    g.add_argument("--fresh", action="store_true",
                   help="discard earlier results in --out (needed to reuse it for another "
                        "input or other settings)")
    return p


def _settings(args: argparse.Namespace, source: str) -> Settings:
    """The run's settings with ``--visual-model auto`` resolved, so resume compares models."""
    return Settings(
        source=source,
        vden=VdenSettings(fps=args.fps, window=args.window, decay=args.decay, alpha=args.alpha),
        visual_model=args.visual_model, asr=args.asr, asr_model=args.asr_model,
        asr_language=args.asr_language, ocr=args.ocr, ocr_fps=args.ocr_fps,
        ocr_change_threshold=args.ocr_change_threshold, ocr_count=args.ocr_count,
        max_seconds=args.max_seconds, max_side=args.max_side, device=args.device).resolved()


def changed_settings(before: dict, now: dict, prefix: str = "") -> list[str]:
    """``key old -> new`` for each value that differs (nested dicts as ``a.b``)."""
    changes = []
    for key, value in now.items():
        old = before.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            changes += changed_settings(old, value, f"{prefix}{key}.")
        elif old != value:
            changes.append(f"{prefix}{key} {old!r} -> {value!r}")
    return changes


def _saved(path: Path) -> tuple[dict | None, Settings | None]:
    """The input and settings recorded in ``settings.json``; None where unreadable (or from
    an older version that did not record them)."""
    try:
        data = json.loads(path.read_text())
        recorded_input = data.pop("input", None)
        return recorded_input, Settings.from_dict(data)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None, None


def _refuse_mixing(out: Path, settings: Settings, collection: Collection) -> None:
    """Refuse to mix, in one folder, rows of another input or of settings that change the
    numbers (``--fresh`` skips this check)."""
    saved = out / "settings.json"
    if not saved.exists():
        return
    before_input, before = _saved(saved)
    now_input = collection.input_record()
    if before_input != now_input:
        changes = (changed_settings(before_input, now_input) if before_input is not None
                   else [f"input (not recorded) -> {now_input}"])
        raise AnnotationError(f"was written for another input: {'; '.join(changes)}; "
                              "pass --fresh to overwrite it or choose another --out",
                              file=str(saved))
    now = settings.affecting_numbers()
    if before is None or before.affecting_numbers() != now:
        changes = (changed_settings(before.affecting_numbers(), now) if before is not None
                   else ["settings unreadable or from an older version"])
        raise AnnotationError(f"was written with other settings: {'; '.join(changes)}; "
                              "pass --fresh to start over or the same options to resume",
                              file=str(saved))


def _start_output(out: Path, settings: Settings, collection: Collection, fresh: bool) -> None:
    """Record this run's input and settings (after every check passed), dropping earlier
    results first with ``--fresh``."""
    if fresh:
        for name in ("per_video.jsonl", "summary.json", "report.md", "density.png"):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "settings.json").write_text(
        json.dumps({**settings.to_dict(), "input": collection.input_record()}, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.asr == "openai-whisper" and not args.asr_model:
        parser.error(OPENAI_WHISPER_NEEDS_MODEL)
    try:
        collection = collect_jobs(args.path, args.source, args.video_dir, args.split)
        settings = _settings(args, collection.source)
        if not args.fresh:
            _refuse_mixing(args.out, settings, collection)
        check_backends(settings)   # a missing model: nothing written, nothing deleted
        with writing(args.out, "nothing was measured yet: free space and rerun"):
            _start_output(args.out, settings, collection, args.fresh)
    except (AnnotationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except WriteFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_WRITE_FAILED
    if collection.video_dir and not args.video_dir:
        print(f"videos: {collection.video_dir}")
    try:
        rows = run(collection.jobs, settings, args.out, args.workers, args.backend)
        with writing(args.out, RESUME):
            summary = write_reports(rows, settings.to_dict(), backends_used(rows), args.out)
    except WriteFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_WRITE_FAILED
    print(f"{summary['videos']} videos ({collection.source}); report: {args.out / 'report.md'}")
    print("backends: " + ", ".join(f"{k}: {v}" for k, v in summary["backends"].items()))
    if summary["failed"]:
        print(f"error: {summary['failed']} of {summary['videos']} videos failed "
              f"(see 'error' in {args.out / 'per_video.jsonl'})", file=sys.stderr)
        return EXIT_FAILED_VIDEOS
    return 0
