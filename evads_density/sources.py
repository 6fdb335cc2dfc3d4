"""What to analyse: a folder of videos, or an annotation file / hub id (with or without videos)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from evads_tasks.core.annotations import AnnotationError, Event, load_annotations, resolve_video
from evads_tasks.core.annotations.videos import video_root, videos_beside

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".flv", ".ts")
SOURCES = ("auto", "video", "annotations", "both")


@dataclass(frozen=True)
class VideoJob:
    """One video to measure: its file (video source) and/or its events (annotation source)."""

    video_id: str
    video_path: str | None = None
    events: tuple[Event, ...] | None = None
    duration: float | None = None
    missing_video: str | None = None  # why the video part cannot run, when it was asked for


def folder_jobs(folder: Path) -> list[VideoJob]:
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not files:
        raise AnnotationError(f"no video files ({', '.join(VIDEO_SUFFIXES)}) in the folder",
                              file=str(folder))
    by_id: dict[str, Path] = {}
    for path in files:
        if path.stem in by_id:
            raise AnnotationError(f"two videos share the id {path.stem!r}: {by_id[path.stem].name} "
                                  f"and {path.name}; rename or move one", file=str(folder))
        by_id[path.stem] = path
    return [VideoJob(video_id=stem, video_path=str(path)) for stem, path in by_id.items()]


def annotation_jobs(source: str, video_dir: str | os.PathLike | None, want_video: bool,
                    split: str | None = None) -> list[VideoJob]:
    """One job per video of an annotation file (the first record of a video carries its events)."""
    first = {}
    for record in load_annotations(source, split=split):
        first.setdefault(record.video_id, record)
    jobs = []
    for video_id, record in first.items():
        path, missing = None, None
        if want_video:
            try:
                path = str(resolve_video(record, video_dir))
            except AnnotationError as exc:
                missing = str(exc)
        jobs.append(VideoJob(video_id=video_id, video_path=path, events=record.events,
                             duration=record.duration, missing_video=missing))
    return jobs


@dataclass(frozen=True)
class Collection:
    """The jobs of one input and where they come from (recorded in ``settings.json``)."""

    jobs: list[VideoJob]
    source: str           # resolved: video, annotations or both
    path: str             # absolute path of a local input, else the hub id as given
    split: str | None = None
    video_dir: str | None = None   # the video root of an annotation input, when used

    def input_record(self) -> dict:
        return {"path": self.path, "split": self.split, "video_dir": self.video_dir}


def collect_jobs(path: str, source: str = "auto", video_dir: str | None = None,
                 split: str | None = None) -> Collection:
    """The jobs of ``path`` and the resolved source mode (``video``, ``annotations``, ``both``).

    ``auto``: a folder means video; an annotation file means both when a video root is
    found (``--video-dir``, else ``$EVADS_VIDEO_DIR``, else ``videos/`` beside the file's
    ``annotations/`` folder or beside the file), else annotations only.
    """
    if source not in SOURCES:
        raise ValueError(f"--source must be one of {SOURCES}, got {source!r}")
    as_path = Path(path).expanduser()
    if as_path.is_dir():
        if source in ("annotations", "both"):
            raise AnnotationError("a folder of videos has no annotations: use --source video "
                                  "or pass an annotation file", file=str(as_path))
        return Collection(folder_jobs(as_path), "video", str(as_path.resolve()))
    root = video_root(video_dir) or (videos_beside(as_path) if as_path.is_file() else None)
    if source == "auto":
        source = "both" if root is not None else "annotations"
    if source in ("video", "both") and root is None:
        raise AnnotationError(f"--source {source} with an annotation file needs --video-dir, "
                              "$EVADS_VIDEO_DIR or a videos/ folder beside the annotations",
                              file=str(path))
    used_root = None if source == "annotations" else str(root.resolve())
    return Collection(annotation_jobs(path, used_root, source != "annotations", split), source,
                      str(as_path.resolve()) if as_path.exists() else path, split, used_root)
