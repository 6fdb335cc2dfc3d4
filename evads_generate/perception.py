"""Perception first: each video's per-second OCR/ASR metadata in the authors' layout.

For a raw video this is the density analyzer's own measurement (``evads_density``: decode,
Whisper ASR with the run's speech language, RapidOCR by time stamp), so one pass gives both
the metadata the agents read and the Vden/Aden/Oden of the new set. The shared video probe
runs first: a corrupt or empty file is named and skipped before any model sees it. For an
annotation file the metadata is taken as it is.

The authors' layout (``evads_tasks.core.annotations.events``)::

    Duration: 12s

    [Time-aligned Events]:
    Time 7s: OCR Text: [69.9元 | 买一送一] ; ASR Text: "Now only sixty"

One line per second that shows text or carries speech; a word of speech belongs to the
second holding its middle (``Transcript.per_second``), and the screen text of a second is
that of the frame OCR looked at for it.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from pathlib import Path

from evads_density.analysis import Backends, Settings, analyse, load_backends
from evads_density.sources import VideoJob
from evads_tasks.core.annotations import EvadsRecord, Event, render_metadata
from evads_tasks.core.annotations.categories import chinese_category
from evads_tasks.core.video_probe import VideoProbe, probe_videos

from .records import VideoMeta


def ocr_per_second(rows: Sequence[dict]) -> dict[int, tuple[str, ...]]:
    """The on-screen text of each second from the analyzer's OCR rows.

    The rows are the looks of the OCR schedule in order, each covering ``seconds`` of
    screen time from where the previous one stopped (the schedule starts at 0), so second
    ``s`` belongs to the row whose span holds it.
    """
    texts: dict[int, tuple[str, ...]] = {}
    covered = 0.0
    for row in rows:
        start, covered = covered, covered + float(row["seconds"])
        for second in range(math.ceil(start - 1e-6), math.ceil(covered - 1e-6)):
            if row["texts"]:
                texts[second] = tuple(dict.fromkeys(t.strip() for t in row["texts"]
                                                    if t.strip()))
    return texts


def events_from_measurement(video: dict) -> tuple[Event, ...]:
    """Per-second events from a ``measure_video`` result (its OCR rows and speech)."""
    screen = ocr_per_second(video.get("ocr") or [])
    speech = {int(s): text for s, text in (video.get("asr_per_second") or {}).items()}
    return tuple(Event(float(s), float(s), screen.get(s, ()), speech.get(s))
                 for s in sorted(set(screen) | set(speech)))


def metadata_text(category: str | None, duration: float | None,
                  events: tuple[Event, ...]) -> str:
    """The metadata block as the agents and the benchmark see it (whole-second duration)."""
    shown = None if duration is None else max(1, round(duration))
    return render_metadata(chinese_category(category), shown, events)


def from_record(record: EvadsRecord, video_path: str | None) -> VideoMeta:
    """An annotated video: its metadata as given (the published splits re-generated)."""
    issues = []
    if not any(e.ocr for e in record.events):
        issues.append("no on-screen text (OCR) in the annotations")
    if not any(e.asr for e in record.events):
        issues.append("no speech (ASR) in the annotations")
    error = None if record.events else "the annotations carry no time-aligned OCR/ASR events"
    return VideoMeta(record.video_id, "annotations", video_path, record.category,
                     record.duration, record.events, record.metadata_text(), tuple(issues),
                     error)


class Perceiver:
    """Runs the density analyzer's measurement on raw videos (models loaded once)."""

    def __init__(self, settings: Settings, cache_dir: Path, language: str) -> None:
        self.settings, self.cache_dir, self.language = settings, cache_dir, language
        self._backends: Backends | None = None

    def probe(self, paths: Sequence[str]) -> dict[Path, VideoProbe]:
        """The shared video probe's verdict for every file (cached on disk)."""
        return probe_videos(paths, cache_dir=self.cache_dir)

    def perceive(self, video_id: str, path: str, probe: VideoProbe | None) -> VideoMeta:
        if probe is not None and not probe.ok:
            return VideoMeta(video_id, "video", path, None, probe.duration, (), "", (),
                             f"video cannot be decoded: {probe.reason}")
        if self._backends is None:
            self._backends = load_backends(self.settings)
        row = analyse(VideoJob(video_id, path), self.settings, self._backends)
        video = row.get("video")
        if video is None:
            return VideoMeta(video_id, "video", path, None, None, (), "", (),
                             row.get("error") or "perception failed", None, row["backends"])
        events = events_from_measurement(video)
        issues = list(video.get("notes") or [])
        if not any(e.ocr for e in events):
            issues.append("no on-screen text found (OCR empty)")
        if not any(e.asr for e in events):
            issues.append("no speech transcribed (ASR empty)")
        detected = video.get("asr_languages") or []
        wanted = self.settings.asr_language
        if wanted in (None, "auto") and detected and self.language not in detected:
            issues.append(f"speech is in {', '.join(detected)}, not {self.language}: questions "
                          f"are still written in {self.language}")
        error = None if events else "no on-screen text and no speech: nothing to ask about"
        density = {key: video.get(key) for key in ("vden", "aden", "oden", "duration")}
        return VideoMeta(video_id, "video", path, None, video["duration"], events,
                         metadata_text(None, video["duration"], events), tuple(issues), error,
                         density, row["backends"])


def frame_urls(path: str, count: int, max_side: int = 448) -> list[str]:
    """``count`` frames spread over the video as JPEG data URLs, for a VLM proposer."""
    from PIL import Image

    from evads_density.decode import probe, sample_frames

    duration = probe(path).duration or 1.0
    sampled = sample_frames(path, fps=count / duration, max_seconds=duration,
                            max_side=max_side)
    urls = []
    for frame in sampled.frames[:count]:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=85)
        urls.append("data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode())
    return urls
