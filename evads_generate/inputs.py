"""What to generate for: a folder of videos, one video, or an annotation file / hub id.

A folder is read the way the density analyzer reads one (same suffixes, same refusal of two
files with one id). An annotation file gives each video's metadata as is, with its video
found like ``make eval`` finds it (``--video-dir``, ``$EVADS_VIDEO_DIR``, ``videos/`` beside
the file), which only matters for frames sent to a VLM and the output's video links.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evads_density.sources import VIDEO_SUFFIXES, folder_jobs
from evads_tasks.core.annotations import (
    AnnotationError,
    EvadsRecord,
    load_annotations,
    resolve_video,
)
from evads_tasks.core.annotations.videos import video_root, videos_beside


@dataclass(frozen=True)
class VideoInput:
    """One video to generate for: a raw file to perceive, or an annotated record."""

    video_id: str
    video_path: str | None
    record: EvadsRecord | None = None

    @property
    def raw(self) -> bool:
        return self.record is None


def collect_inputs(source: str, video_dir: str | None = None,
                   split: str | None = None) -> tuple[list[VideoInput], str]:
    """The videos of ``source`` and its kind (``videos`` or ``annotations``)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return [VideoInput(job.video_id, job.video_path) for job in folder_jobs(path)], "videos"
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        return [VideoInput(path.stem, str(path))], "videos"
    first: dict[str, EvadsRecord] = {}
    for record in load_annotations(source, split=split):
        first.setdefault(record.video_id, record)
    root = video_root(video_dir) or (videos_beside(path) if path.is_file() else None)
    inputs = []
    for video_id, record in first.items():
        found = None
        if root is not None:
            try:
                found = str(resolve_video(record, root))
            except AnnotationError:
                found = None
        inputs.append(VideoInput(video_id, found, record))
    return inputs, "annotations"
