"""``python -m evads_density PATH --out DIR``: density of a video folder or annotation file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evads_tasks.annotations import AnnotationError

from .analysis import Settings
from .asr import ASR_CHOICES
from .features import DINOV3_BASE
from .metrics import VdenSettings
from .ocr import OCR_COUNT_POLICIES
from .report import write_reports
from .runner import EXECUTORS, run
from .sources import SOURCES, collect_jobs

EXIT_FAILED_VIDEOS = 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m evads_density",
        description="Vden/Aden/Oden of short videos, from the videos or from E-VAds annotations.")
    p.add_argument("path", help="a folder of videos, an annotation file, or a hub dataset id")
    p.add_argument("--out", required=True, type=Path, help="output folder (resumed if present)")
    p.add_argument("--source", choices=SOURCES, default="auto",
                   help="auto: video for a folder; both for annotations + --video-dir; "
                        "else annotations")
    p.add_argument("--video-dir", help="video root for an annotation file ($EVADS_VIDEO_DIR)")
    p.add_argument("--split", help="which split's files to read from a hub dataset")
    g = p.add_argument_group("Vden")
    g.add_argument("--fps", type=float, default=2.0, help="sampled frames per second")
    g.add_argument("--window", type=int, default=2, help="neighbours on each side")
    g.add_argument("--decay", type=float, default=1.0, help="neighbour weight 1/d**decay")
    g.add_argument("--alpha", type=float, default=100.0, help="scale of mean(1 - S_i)")
    g.add_argument("--visual-model", default="auto",
                   help=f"auto ({DINOV3_BASE} when cached locally, else offline-pixels), "
                        "offline-pixels, or a transformers model id / folder")
    g = p.add_argument_group("speech and screen text")
    g.add_argument("--asr", choices=ASR_CHOICES, default="faster-whisper")
    g.add_argument("--asr-model", help="faster-whisper: CTranslate2 folder (default: bundled "
                   "tiny.en, English only); openai-whisper: model name or .pt checkpoint")
    g.add_argument("--asr-language", help="language code for a multilingual model, e.g. zh")
    g.add_argument("--ocr", choices=("rapidocr", "none"), default="rapidocr")
    g.add_argument("--ocr-fps", type=float, default=1.0, help="OCR'd frames per second")
    g.add_argument("--ocr-change-threshold", type=float, default=0.02,
                   help="OCR a frame only when its thumbnail differs from the last OCR'd one "
                        "by more than this (mean abs difference, 0..1)")
    g.add_argument("--ocr-count", choices=OCR_COUNT_POLICIES, default="per-second",
                   help="per-second: text counts every second it is on screen (matches the "
                        "paper); unique: once per appearance")
    g = p.add_argument_group("scale and robustness")
    g.add_argument("--max-seconds", type=float, default=600.0,
                   help="analyse at most this many seconds of each video")
    g.add_argument("--max-side", type=int, default=640, help="decode frames to this long side")
    g.add_argument("--device", default="cpu", help="torch device for the models")
    g.add_argument("--workers", type=int, default=1, help="worker processes / Ray actors")
    g.add_argument("--backend", choices=EXECUTORS, default="local",
                   help="local processes or a Ray cluster (ray.init() finds or starts one)")
    g.add_argument("--fresh", action="store_true", help="discard earlier results in --out")
    return p


def _settings(args: argparse.Namespace, source: str) -> Settings:
    return Settings(
        source=source,
        vden=VdenSettings(fps=args.fps, window=args.window, decay=args.decay, alpha=args.alpha),
        visual_model=args.visual_model, asr=args.asr, asr_model=args.asr_model,
        asr_language=args.asr_language, ocr=args.ocr, ocr_fps=args.ocr_fps,
        ocr_change_threshold=args.ocr_change_threshold, ocr_count=args.ocr_count,
        max_seconds=args.max_seconds, max_side=args.max_side, device=args.device)


def _check_resume(out: Path, settings: dict, fresh: bool) -> None:
    """Refuse to mix rows made with other settings into one output folder."""
    saved = out / "settings.json"
    if fresh:
        for name in ("per_video.jsonl", "summary.json", "report.md", "density.png"):
            (out / name).unlink(missing_ok=True)
    elif saved.exists() and json.loads(saved.read_text()) != settings:
        raise AnnotationError("was written with other settings; pass --fresh to start over "
                              "or the same options to resume", file=str(saved))
    out.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(settings, indent=2))


def _backends_used(rows: list[dict]) -> dict:
    return next((row["backends"] for row in rows if row.get("backends")), {})


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        jobs, source = collect_jobs(args.path, args.source, args.video_dir, args.split)
        settings = _settings(args, source)
        _check_resume(args.out, settings.to_dict(), args.fresh)
    except (AnnotationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = run(jobs, settings, args.out, args.workers, args.backend)
    summary = write_reports(rows, settings.to_dict(), _backends_used(rows), args.out)
    print(f"{summary['videos']} videos ({source}); report: {args.out / 'report.md'}")
    print("backends: " + ", ".join(f"{k}: {v}" for k, v in summary["backends"].items()))
    if summary["failed"]:
        print(f"error: {summary['failed']} of {summary['videos']} videos failed "
              f"(see 'error' in {args.out / 'per_video.jsonl'})", file=sys.stderr)
        return EXIT_FAILED_VIDEOS
    return 0
