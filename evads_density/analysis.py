"""The per-video measurement: one job in, one JSON-ready row out (never raises).

The same function runs in-process, in worker processes and on Ray actors. Backends are
loaded once per process by :func:`load_backends` and passed in.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace

from evads_tasks.core.annotations import Event
from evads_tasks.core.text_units import count_units

from .asr import ASR_CHOICES, check_asr, load_asr, resolved_model
from .decode import DecodeError, SampledFrames, decode_audio, probe, sample_frames
from .features import check_visual_model, load_visual, resolve_visual_model
from .metrics import VdenSettings, neighbour_similarities, rate, vden
from .ocr import (
    OCR_COUNT_POLICIES,
    RapidOCRReader,
    ocr_schedule,
    read_frames,
    screen_units,
)
from .sources import VideoJob

OCR_CHOICES = ("rapidocr", "none")
MIN_SIDE = 32  # smaller frames leave nothing for OCR or the visual features to see


@dataclass(frozen=True)
class Settings:
    """Everything that changes the numbers; the CLI's defaults are these defaults.

    Saved to ``settings.json`` (with the visual model resolved) and checked on resume.
    """

    source: str = "video"
    vden: VdenSettings = VdenSettings()
    visual_model: str = "auto"
    asr: str = "faster-whisper"
    asr_model: str | None = None
    asr_language: str = "auto"
    ocr: str = "rapidocr"
    ocr_fps: float = 1.0
    ocr_change_threshold: float = 0.02
    ocr_count: str = "per-second"
    max_seconds: float = 600.0
    max_side: int = 640
    device: str = "cpu"

    def __post_init__(self) -> None:
        checks = {
            "source": self.source in ("video", "annotations", "both"),
            "asr": self.asr in ASR_CHOICES,
            "ocr": self.ocr in OCR_CHOICES,
            "ocr_count": self.ocr_count in OCR_COUNT_POLICIES,
            "ocr_fps": self.ocr_fps > 0,
            "ocr_change_threshold": 0 <= self.ocr_change_threshold <= 1,
            "max_seconds": self.max_seconds > 0,
            "max_side": self.max_side >= MIN_SIDE,
        }
        bad = [f"{name}={getattr(self, name)!r}" for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid density settings: {', '.join(bad)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Settings:
        return cls(**{**data, "vden": VdenSettings(**data["vden"])})

    def resolved(self) -> Settings:
        """The same settings with ``visual_model=auto`` replaced by the model it picks here
        (and no ``asr_model`` by the default it stands for, so a resume compares models)."""
        if self.source == "annotations":
            return self
        return replace(self, visual_model=resolve_visual_model(self.visual_model),
                       asr_model=resolved_model(self.asr, self.asr_model))

    def affecting_numbers(self) -> dict:
        """The settings that change this source's numbers (what a resume must match)."""
        if self.source == "annotations":
            return {"source": self.source, "ocr_count": self.ocr_count}
        kept = self.to_dict()
        if self.asr == "none":
            kept.update(asr_model=None, asr_language=None)
        if self.ocr == "none":
            kept.update(ocr_fps=None, ocr_change_threshold=None, ocr_count=None)
        return kept


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


def check_backends(settings: Settings) -> None:
    """Fail (:class:`~evads_density.availability.BackendUnavailable`) before anything is
    written when a model :func:`load_backends` would load is not on disk (the CLI's argparse
    type already refused a missing device); loading itself happens in each worker."""
    if settings.source == "annotations":
        return
    check_visual_model(settings.resolved().visual_model)
    check_asr(settings.asr, settings.asr_model, settings.asr_language)


def load_backends(settings: Settings, threads: int = 0) -> Backends:
    """Load the models the settings ask for (once per process); none for annotations only."""
    if settings.source == "annotations":
        return Backends(None, None, None)
    if threads:
        import torch

        torch.set_num_threads(threads)
    return Backends(
        visual=load_visual(settings.resolved().visual_model, settings.device),
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
    texts = per_second_texts(events, duration)
    screen = screen_units(texts, [1.0] * len(texts), ocr_count)
    return {"duration": duration, "aden": rate(speech_units, duration),
            "oden": rate(screen, duration), "asr_units": speech_units, "ocr_units": screen}


def read_screen_text(sampled: SampledFrames, seconds: float, settings: Settings,
                     reader) -> tuple[list[dict], float]:
    """OCR the frames on screen every ``1/ocr_fps`` s; the per-frame evidence and the units.

    Frames are chosen by time stamp and weighed by the time they cover (see
    :func:`ocr_schedule`), so Oden does not depend on the source's frame rate.
    """
    picks = ocr_schedule(sampled.times, settings.ocr_fps, seconds, 0.5 / settings.vden.fps)
    read = read_frames(reader, [sampled.frames[i] for i, _ in picks],
                       [sampled.times[i] for i, _ in picks], settings.ocr_change_threshold)
    covered = [round(c, 3) for _, c in picks]
    units = screen_units([r.texts for r in read], covered, settings.ocr_count)
    rows = [{"time": r.time, "seconds": c, "texts": list(r.texts), "reused": r.reused}
            for r, c in zip(read, covered, strict=True)]
    return rows, units


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
    expected = math.ceil(seconds * settings.vden.fps - 1e-9)
    if len(sampled.frames) < 0.9 * expected:
        notes.append(f"source frame rate below --fps: {len(sampled.frames)} frames sampled "
                     f"in {seconds:.1f} s (no frame repeated); the Vden window counts "
                     "sampled frames, OCR is weighed by time")
    features = backends.visual.embed(sampled.frames)
    sims = neighbour_similarities(features, settings.vden.window, settings.vden.decay)

    transcript = None
    if not info.has_audio:
        notes.append("no audio stream: aden = 0")
    elif backends.speech is None:
        notes.append("ASR disabled (--asr none): aden = 0")
    else:
        transcript = backends.speech.transcribe(decode_audio(path, settings.max_seconds))
        notes.extend(transcript.notes)
    segments = transcript.segments if transcript else ()
    speech_units = transcript.units if transcript else 0

    ocr_rows, ocr_units = [], 0.0
    if backends.ocr is None:
        notes.append("OCR disabled (--ocr none): oden = 0")
    else:
        ocr_rows, ocr_units = read_screen_text(sampled, seconds, settings, backends.ocr)
    if sampled.rotation:
        notes.append(f"rotation metadata {sampled.rotation} deg applied")
    if len(sampled.frames) < 2:  # no neighbour to compare with: no visual change measurable
        notes.append(f"only {len(sampled.frames)} frame(s) sampled: Vden needs 2 or more, "
                     "so it is not given (left out of the Vden mean)")
    return {
        "duration": round(duration, 3), "analysed_seconds": round(seconds, 3),
        "vden": vden(sims, settings.vden.alpha) if len(sampled.frames) >= 2 else None,
        "aden": rate(speech_units, seconds),
        "oden": rate(ocr_units, seconds),
        "asr_units": speech_units, "ocr_units": ocr_units,
        "size": [info.width, info.height],
        "frames": len(sampled.frames),
        "frame_times": sampled.times,
        "frame_similarities": [round(float(s), 4) for s in sims],
        "asr": [s.to_row() for s in segments],
        "asr_languages": list(transcript.languages) if transcript else [],
        "asr_per_second": transcript.per_second() if transcript else {},
        "ocr": ocr_rows,
        "ocr_calls": sum(not r["reused"] for r in ocr_rows),
        "notes": notes,
    }


def _empty_row(job: VideoJob, settings: Settings, backend_names: dict) -> dict:
    return {"video_id": job.video_id, "source": settings.source,
            "video_path": job.video_path, "backends": backend_names}


def crash_row(job: VideoJob, settings: Settings, message: str) -> dict:
    """The row of a job whose worker process died (nothing measured; the run goes on)."""
    return {**_empty_row(job, settings, {}), "duration": None, "vden": None, "aden": None,
            "oden": None, "error": message, "seconds": None}


def analyse(job: VideoJob, settings: Settings, backends: Backends) -> dict:
    """One output row for a job; failures become an ``error`` field, never an exception."""
    started = time.perf_counter()
    row = _empty_row(job, settings, backends.names(settings.source))
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
