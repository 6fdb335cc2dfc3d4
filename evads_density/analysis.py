"""The per-video measurement: one job in, one JSON-ready row out (never raises).

The same function runs in-process, in worker processes and on Ray actors. Backends are
loaded once per process by :func:`load_backends` and passed in.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

from evads_tasks.annotations import Event
from evads_tasks.text_units import count_units

from .asr import load_asr
from .decode import DecodeError, decode_audio, probe, sample_frames
from .features import load_visual, resolve_visual_model
from .metrics import VdenSettings, neighbour_similarities, rate, vden
from .ocr import RapidOCRReader, read_frames, screen_units
from .sources import VideoJob


@dataclass(frozen=True)
class Settings:
    """Everything that changes the numbers; written to summary.json and checked on resume."""

    source: str = "video"
    vden: VdenSettings = VdenSettings()
    visual_model: str = "offline-pixels"
    asr: str = "faster-whisper"
    asr_model: str | None = None
    asr_language: str | None = None
    ocr: str = "rapidocr"
    ocr_fps: float = 1.0
    ocr_change_threshold: float = 0.02
    ocr_count: str = "per-second"
    max_seconds: float = 600.0
    max_side: int = 640
    device: str = "cpu"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Backends:
    visual: object | None
    speech: object | None
    ocr: object | None

    def names(self, source: str) -> dict:
        """What produced each number; annotation-only runs load no model."""
        names = {}
        if source in ("video", "both"):
            names = {"visual": getattr(self.visual, "name", None),
                     "asr": getattr(self.speech, "name", None) or "none",
                     "ocr": getattr(self.ocr, "name", None) or "none"}
        if source in ("annotations", "both"):
            names["annotations"] = "time-aligned OCR/ASR events"
        names["units"] = "CJK characters + Latin words + numbers"
        return names


def load_backends(settings: Settings, threads: int = 0) -> Backends:
    """Load the models the settings ask for (once per process); none for annotations only."""
    if settings.source == "annotations":
        return Backends(None, None, None)
    if threads:
        import torch

        torch.set_num_threads(threads)
    return Backends(
        visual=load_visual(resolve_visual_model(settings.visual_model), settings.device),
        speech=load_asr(settings.asr, settings.asr_model, settings.asr_language,
                        settings.device, threads),
        ocr=RapidOCRReader(settings.max_side) if settings.ocr == "rapidocr" else None,
    )


def per_second_texts(events: tuple[Event, ...], duration: float) -> list[tuple[str, ...]]:
    """The OCR lines on screen in each second, expanding ``Time a-bs`` ranges."""
    seconds = max(int(math.ceil(duration)), 1 + int(max((e.end for e in events), default=0)))
    screen: list[list[str]] = [[] for _ in range(seconds)]
    for event in events:
        for second in range(int(event.start), int(event.end) + 1):
            screen[second].extend(t for t in event.ocr if t not in screen[second])
    return [tuple(texts) for texts in screen]


def measure_annotations(events: tuple[Event, ...], duration: float | None,
                        ocr_count: str) -> dict:
    """Aden and Oden from time-aligned events (pure). Without a ``Duration:`` header the
    duration is taken as one second past the last event."""
    if duration is None:
        duration = 1.0 + max((e.end for e in events), default=0.0)
    speech_units = sum(count_units(e.asr) for e in events)
    screen = screen_units(per_second_texts(events, duration), 1.0, ocr_count)
    return {"duration": duration, "aden": rate(speech_units, duration),
            "oden": rate(screen, duration), "asr_units": speech_units, "ocr_units": screen}


def measure_video(path: str, settings: Settings, backends: Backends) -> dict:
    """Vden, Aden and Oden of one video file, with the evidence behind each number."""
    info = probe(path)
    if not info.has_video:
        raise DecodeError("no video stream (audio-only or not a video file)")
    notes = []
    sampled = sample_frames(path, settings.vden.fps, settings.max_seconds, settings.max_side)
    duration = info.duration or (sampled.last_time + 1.0 / settings.vden.fps)
    seconds = min(duration, settings.max_seconds)
    if duration > settings.max_seconds:
        notes.append(f"long video: only the first {settings.max_seconds:g} s of "
                     f"{duration:.1f} s analysed (--max-seconds)")
    features = backends.visual.embed(sampled.frames)
    sims = neighbour_similarities(features, settings.vden.window, settings.vden.decay)

    segments = []
    if not info.has_audio:
        notes.append("no audio stream: aden = 0")
    elif backends.speech is None:
        notes.append("ASR disabled (--asr none): aden = 0")
    else:
        audio = decode_audio(path, settings.max_seconds)
        segments = backends.speech.transcribe(audio) if audio is not None and audio.size else []
    speech_units = sum(count_units(s.text) for s in segments)

    ocr_rows, ocr_units = [], 0.0
    if backends.ocr is None:
        notes.append("OCR disabled (--ocr none): oden = 0")
    else:
        step = max(1, round(settings.vden.fps / settings.ocr_fps))
        picked = list(range(0, len(sampled.frames), step))
        ocr_rows = read_frames(backends.ocr, [sampled.frames[i] for i in picked],
                               [sampled.times[i] for i in picked], settings.ocr_change_threshold)
        ocr_units = screen_units([r.texts for r in ocr_rows], step / settings.vden.fps,
                                 settings.ocr_count)
    if sampled.rotation:
        notes.append(f"rotation metadata {sampled.rotation} deg applied")
    return {
        "duration": round(duration, 3), "analysed_seconds": round(seconds, 3),
        "vden": vden(sims, settings.vden.alpha), "aden": rate(speech_units, seconds),
        "oden": rate(ocr_units, seconds),
        "asr_units": speech_units, "ocr_units": ocr_units,
        "size": [info.width, info.height],
        "frames": len(sampled.frames),
        "frame_times": sampled.times,
        "frame_similarities": [round(float(s), 4) for s in sims],
        "asr": [{"start": s.start, "end": s.end, "text": s.text} for s in segments],
        "ocr": [{"time": r.time, "texts": list(r.texts), "reused": r.reused} for r in ocr_rows],
        "ocr_calls": sum(not r.reused for r in ocr_rows),
        "notes": notes,
    }


def analyse(job: VideoJob, settings: Settings, backends: Backends) -> dict:
    """One output row for a job; failures become an ``error`` field, never an exception."""
    started = time.perf_counter()
    row: dict = {"video_id": job.video_id, "source": settings.source,
                 "video_path": job.video_path, "backends": backends.names(settings.source)}
    errors = []
    if settings.source in ("annotations", "both"):
        if job.events is None:
            errors.append("annotations: this video has no time-aligned events")
        else:
            try:
                row["annotations"] = measure_annotations(job.events, job.duration,
                                                         settings.ocr_count)
            except ValueError as exc:
                errors.append(f"annotations: {exc}")
    if settings.source in ("video", "both"):
        if job.missing_video:
            errors.append(f"video: {job.missing_video}")
        else:
            try:
                row["video"] = measure_video(job.video_path, settings, backends)
            except DecodeError as exc:
                errors.append(f"video: {exc}")
            except Exception as exc:  # one bad video must not stop the run
                errors.append(f"video: {type(exc).__name__}: {exc}")
    primary = row.get("video") or (row.get("annotations") if settings.source == "annotations"
                                   else None)
    row["duration"] = (primary or row.get("annotations") or {}).get("duration")
    for key in ("vden", "aden", "oden"):
        row[key] = primary.get(key) if primary else None
    if errors:
        row["error"] = "; ".join(errors)
    row["seconds"] = round(time.perf_counter() - started, 3)
    return row
