"""Resolve annotation video paths against a configured video root, by file name only."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import AnnotationError
from .record import EvadsRecord

VIDEO_DIR_ENV = "EVADS_VIDEO_DIR"


def video_root(video_dir: str | os.PathLike | None = None) -> Path | None:
    """The configured video root: the argument, else ``$EVADS_VIDEO_DIR``, else None."""
    chosen = video_dir or os.environ.get(VIDEO_DIR_ENV)
    return Path(chosen).expanduser() if chosen else None


def videos_beside(annotation_file: str | os.PathLike) -> Path | None:
    """``videos/`` beside the ``annotations/`` folder holding the file, else beside the file:
    the authors' layout (``annotations/*.parquet``, ``videos/<id>.mp4``) and the sample's."""
    folder = Path(annotation_file).expanduser().parent
    candidates = [folder.parent / "videos"] if folder.name == "annotations" else []
    return next((c for c in [*candidates, folder / "videos"] if c.is_dir()), None)


def resolve_video(record: EvadsRecord, video_dir: str | os.PathLike | None = None,
                  *, must_exist: bool = True) -> Path:
    """The local path of a record's video.

    Annotation paths such as ``../videos/698.mp4`` are relative to the authors'
    tree, so only the file name is kept and looked up under the video root.
    """
    root = video_root(video_dir)
    if root is None:
        raise AnnotationError(
            f"no video directory configured for video {record.video_file!r}: pass --video-dir "
            f"or set {VIDEO_DIR_ENV}", field="video_file")
    if record.video_name in ("", ".", ".."):
        raise AnnotationError(
            f"video path {record.video_file!r} of question {record.question_id} names no file",
            field="video_file")
    path = root / record.video_name
    if must_exist and not path.is_file():
        raise AnnotationError(
            f"video file {path} not found (question {record.question_id}, "
            f"annotation path {record.video_file!r})", field="video_file")
    return path
