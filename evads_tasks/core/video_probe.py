"""Is each video usable? Checked once, before any model, judge or density work.

Why: one undecodable file among thousands used to surface hours into a run, as a decoder
error about something else. Every consumer (the lmms-eval tasks, density, the Q&A generator)
probes its videos first with :func:`probe_videos`: the container opens (PyAV, i.e. FFmpeg,
the library behind the decoders the models use), the duration is > 0, the first video
frame decodes, and so does the last second (a seek and a few frames: a file cut short by a
failed copy keeps its header and first frames, and would fail in the middle of a model's
decoding). Results are cached on disk keyed by path + size + mtime, so a rerun does not
probe again and a replaced file is probed anew; paths that are links to one file probe it
once. Probes run on threads (PyAV releases the
GIL) with a progress bar on large sets.

:func:`check_videos` turns probes into the run's decision: by default a bad video stops the
run with :class:`BadVideosError` listing every bad file, its question ids and the reason
(the last line names a file); ``EVADS_BAD_VIDEOS=skip`` leaves their questions out instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from .annotations.errors import AnnotationError

logger = logging.getLogger(__name__)

BAD_VIDEOS_ENV = "EVADS_BAD_VIDEOS"
BAD_VIDEO_MODES = ("stop", "skip")
CACHE_DIR_ENV = "EVADS_CACHE_DIR"
DEFAULT_CACHE_DIR = Path("~/.cache/evads")
CACHE_FILE = "video_probe.sqlite3"
PROBE_VERSION = 2  # part of every cache key: a change to the checks re-probes
PROGRESS_MIN = 50  # show a progress bar from this many videos to probe
MAX_SHOWN_IDS = 10
END_SLACK_S = 0.5  # how far before the last second a decoded frame still counts


@dataclass(frozen=True)
class VideoProbe:
    """One file's verdict: ``ok``, else ``reason`` says what the decoder reported."""

    path: str
    ok: bool
    reason: str | None = None
    duration: float | None = None


def probe_video(path: str | os.PathLike) -> VideoProbe:
    """Open ``path``, read its duration and decode its first video frame (no cache)."""
    import av  # a few hundred ms to import: only when a video is really probed

    name = str(path)
    try:
        if Path(path).stat().st_size == 0:
            return VideoProbe(name, False, "empty file (0 bytes)")
    except FileNotFoundError:
        return VideoProbe(name, False, "file not found")
    except OSError as error:
        return VideoProbe(name, False, f"cannot read: {error.strerror or error}")
    try:
        with av.open(name) as container:
            if not container.streams.video:
                return VideoProbe(name, False, "no video stream")
            stream = container.streams.video[0]
            duration = video_duration(container, stream)
            if not duration or duration <= 0:
                return VideoProbe(name, False, "duration is 0 or unknown")
            if next(container.decode(stream), None) is None:
                return VideoProbe(name, False, "no video frame decodes", duration)
            if not _end_decodes(container, stream, duration):
                return VideoProbe(name, False, f"the end (about {duration:.1f} s) does not "
                                  "decode: a truncated file?", duration)
    except Exception as error:  # PyAV raises FFmpegError subclasses, OSError, ValueError
        text = str(error).replace(f": '{name}'", "")
        return VideoProbe(name, False, f"{type(error).__name__}: {text}")
    return VideoProbe(name, True, None, duration)


def _end_decodes(container, stream, duration: float) -> bool:
    """Whether a frame within ``END_SLACK_S`` of the video's end decodes (seek to the key
    frame before its last second, then decode forward)."""
    end = float(stream.duration * stream.time_base) if stream.duration and stream.time_base \
        else duration
    target = max(0.0, end - 1.0)
    container.seek(int(target / stream.time_base), stream=stream, backward=True)
    return any(frame.time is None or frame.time >= target - END_SLACK_S
               for frame in container.decode(stream))


def video_duration(container, stream) -> float | None:
    """Seconds from the container, else the stream, else frames / frame rate."""
    if container.duration:
        return container.duration / 1_000_000  # av.time_base
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if stream.frames and stream.average_rate:
        return float(stream.frames / stream.average_rate)
    return None


def probe_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$EVADS_CACHE_DIR`` (shared with the judge cache), else ``~/.cache/evads``."""
    env = os.environ if env is None else env
    return Path(env.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR).expanduser()


class ProbeCache:
    """Probe verdicts in ``<dir>/video_probe.sqlite3``, keyed by path + size + mtime.

    A cache that cannot be opened or written only costs probing again: it is never an error.
    """

    def __init__(self, cache_dir: str | os.PathLike) -> None:
        self.path = Path(cache_dir).expanduser() / CACHE_FILE
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db: sqlite3.Connection | None = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS probes (key TEXT PRIMARY KEY, "
                             "ok INTEGER NOT NULL, reason TEXT, duration REAL)")
        except (OSError, sqlite3.Error) as error:
            logger.warning("video probe cache %s unusable (%s): probing without it",
                           self.path, error)
            self._db = None

    @staticmethod
    def key(path: Path) -> str | None:
        try:
            stat = path.stat()
        except OSError:
            return None  # a missing file is probed every time (it may appear)
        text = f"{PROBE_VERSION}\0{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
        return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()

    def get(self, path: Path) -> VideoProbe | None:
        key = self.key(path)
        if self._db is None or key is None:
            return None
        with self._lock:
            row = self._db.execute("SELECT ok, reason, duration FROM probes WHERE key = ?",
                                   (key,)).fetchone()
        return None if row is None else VideoProbe(str(path), bool(row[0]), row[1], row[2])

    def put(self, path: Path, probe: VideoProbe) -> None:
        key = self.key(path)
        if self._db is None or key is None:
            return
        try:
            with self._lock:
                self._db.execute("INSERT OR REPLACE INTO probes VALUES (?, ?, ?, ?)",
                                 (key, int(probe.ok), probe.reason, probe.duration))
        except sqlite3.Error as error:
            logger.warning("video probe cache %s: not stored (%s)", self.path, error)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


def probe_workers(files: int) -> int:
    """Threads for probing ``files`` files: one per CPU, at most 8."""
    return min(8, os.cpu_count() or 1, files)


def probe_videos(paths: Iterable[str | os.PathLike], *,
                 cache_dir: str | os.PathLike | None = None, workers: int | None = None,
                 progress: bool | None = None) -> dict[Path, VideoProbe]:
    """A verdict for every distinct path: cached ones at once, the rest probed in parallel.

    ``progress`` None shows a bar from ``PROGRESS_MIN`` videos to probe.
    """
    unique = list(dict.fromkeys(Path(p) for p in paths))
    cache = ProbeCache(probe_cache_dir() if cache_dir is None else cache_dir)
    try:
        verdicts = {path: cache.get(path) for path in unique}
        # links to one file (a collection of symlinks, the same video under two ids): that
        # file is probed once, and each path gets its verdict under its own name
        same_file: dict[Path, list[Path]] = {}
        for path, probe in verdicts.items():
            if probe is None:
                same_file.setdefault(path.resolve(), []).append(path)
        groups = list(same_file.values())
        if groups:
            show = len(groups) >= PROGRESS_MIN if progress is None else progress
            with ThreadPoolExecutor(max_workers=workers or probe_workers(len(groups))) as pool, \
                    tqdm(total=len(groups), desc="probing videos", unit="video",
                         disable=not show) as bar:
                probes = pool.map(probe_video, [group[0] for group in groups])
                for group, probe in zip(groups, probes, strict=True):
                    cache.put(group[0], probe)
                    for path in group:
                        verdicts[path] = replace(probe, path=str(path))
                    bar.update(1)
    finally:
        cache.close()
    return {path: probe for path, probe in verdicts.items() if probe is not None}


def bad_video_mode(env: Mapping[str, str] | None = None) -> str:
    """``$EVADS_BAD_VIDEOS``: ``stop`` (default) or ``skip``; ValueError otherwise."""
    env = os.environ if env is None else env
    mode = (env.get(BAD_VIDEOS_ENV) or "stop").strip().lower()
    if mode not in BAD_VIDEO_MODES:
        raise ValueError(f"{BAD_VIDEOS_ENV} must be one of {BAD_VIDEO_MODES}, got {mode!r}")
    return mode


class BadVideosError(AnnotationError):
    """Videos that cannot be used: one line per file, the last line naming a file."""

    def __init__(self, bad: Sequence[tuple[VideoProbe, Sequence[str]]], total: int) -> None:
        questions = sum(len(ids) for _, ids in bad)
        self.lines = [f"{len(bad)} of {total} videos cannot be used, so nothing was run "
                      f"(set {BAD_VIDEOS_ENV}=skip to leave their {questions} question(s) "
                      f"out instead):"]
        self.lines += [video_problem(probe, ids) for probe, ids in bad]
        self.bad = [probe for probe, _ in bad]
        super().__init__("\n".join(self.lines))


def video_problem(probe: VideoProbe, question_ids: Sequence[str] = ()) -> str:
    """``video file PATH not found (questions a, b)`` / ``... cannot be decoded: REASON``."""
    what = "not found" if probe.reason == "file not found" else \
        f"cannot be decoded: {probe.reason}"
    ids = list(question_ids)
    shown = ", ".join(ids[:MAX_SHOWN_IDS]) + (f" and {len(ids) - MAX_SHOWN_IDS} more"
                                              if len(ids) > MAX_SHOWN_IDS else "")
    return f"video file {probe.path} {what}" + (f" (questions {shown})" if ids else "")


def check_videos(videos: Mapping[Path, Sequence[str]], *, mode: str | None = None,
                 cache_dir: str | os.PathLike | None = None,
                 progress: bool | None = None) -> dict[Path, VideoProbe]:
    """Probe ``videos`` (path -> the question ids that use it) and apply the bad-video mode.

    ``stop``: raise :class:`BadVideosError` when any is bad. ``skip``: log one WARNING per bad
    file and return the bad ones (path -> probe), whose questions the caller leaves out.
    """
    mode = bad_video_mode() if mode is None else mode
    probes = probe_videos(videos, cache_dir=cache_dir, progress=progress)
    bad = [(probes[Path(path)], ids) for path, ids in sorted(videos.items())
           if not probes[Path(path)].ok]
    if bad and mode == "stop":
        raise BadVideosError(bad, len(videos))
    for probe, ids in bad:
        logger.warning("%s=skip: leaving out %s", BAD_VIDEOS_ENV, video_problem(probe, ids))
    return {Path(probe.path): probe for probe, _ in bad}
