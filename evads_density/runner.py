"""Running the per-video analysis over a collection: in-process, worker processes or Ray.

Rows are appended to ``per_video.jsonl`` and flushed as each video finishes, so a killed
run resumes where it stopped: finished videos (error rows included) are skipped, and a line
that is not a row (a half-written last line, a corrupt line anywhere) is dropped with a
warning naming the file and line while every row around it is kept. Models load once per
worker (pool initializer / actor). Videos are probed first (``evads_tasks.core.video_probe``,
cached): one that cannot be decoded gets its error row without reaching a worker.

A worker process that dies (out of memory, a crash in native decoding or model code) does
not end the run: with ``--workers 2`` or more the pool is restarted, the videos that were in
flight are retried one at a time, and the one that kills a worker on its own gets an error
row. A Ray actor runs one video at a time, so its video gets the error row and the actor is
replaced. With ``--workers 1`` everything runs in this process: a crash there ends the run
(rerunning resumes after the finished videos).

A worker process never outlives the run: on Linux each asks the kernel for SIGTERM when its
parent dies (``PR_SET_PDEATHSIG``), so a run ended by SIGTERM or SIGKILL leaves no
gigabyte-sized worker behind. A row that cannot be written (a full disk) ends the run with
:class:`~evads_tasks.core.write_failure.WriteFailed` naming the file; the rows before it are
kept and a rerun resumes after them.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from evads_tasks.core.video_probe import probe_videos, video_problem
from evads_tasks.core.write_failure import appending, writing

from .analysis import Backends, Settings, analyse, crash_row, load_backends
from .sources import VideoJob

EXECUTORS = ("local", "ray")
_WORKER: tuple[Settings, Backends] | None = None
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
RESUME = "the rows written before are kept: free space and rerun the same command to resume"


def read_finished(path: Path) -> list[dict]:
    """Rows already written. A line that is not a row (a torn last line from a killed
    writer, a corrupt line anywhere) is skipped with a warning naming the file and line, and
    the file is rewritten without it (atomically), so the rows after it are kept and the
    next row is not glued to a torn one."""
    if not path.exists():
        return []
    rows, good, rewrite = [], [], False
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            try:
                row = json.loads(line)
                if not isinstance(row, dict) or "video_id" not in row:
                    raise ValueError("not a per-video row")
            except (ValueError, UnicodeDecodeError) as error:
                if line.strip():
                    print(f"warning: {path}, line {number}: skipped, not a row "
                          f"({type(error).__name__}: {str(error)[:80]}); its video is "
                          "measured again", file=sys.stderr)
                rewrite = True
                continue
            rows.append(row)
            rewrite = rewrite or not line.endswith(b"\n")
            good.append(line if line.endswith(b"\n") else line + b"\n")
    if rewrite:
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_bytes(b"".join(good))
        os.replace(temporary, path)
    return rows


def with_probed_videos(jobs: Sequence[VideoJob]) -> list[VideoJob]:
    """``jobs`` with each video that cannot be decoded marked ``missing_video`` (the probe's
    reason), so it gets an error row at once instead of failing or crashing in a worker."""
    paths = [job.video_path for job in jobs if job.video_path and not job.missing_video]
    if not paths:
        return list(jobs)
    probes = probe_videos(paths)
    checked = []
    for job in jobs:
        probe = probes.get(Path(job.video_path)) if job.video_path else None
        if probe is not None and not probe.ok and not job.missing_video:
            job = dataclasses.replace(job, missing_video=video_problem(probe))
        checked.append(job)
    return checked


def append_row(handle, row: dict, resume: str) -> None:
    """One JSON line, on disk before the next; a failed write is a ``WriteFailed`` naming the
    file and ``resume`` (how to go on from the rows kept)."""
    with writing(handle.name, resume):
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def _init_worker(settings: Settings, threads: int, parent: int) -> None:
    global _WORKER
    end_with_parent(parent)
    _WORKER = (settings, load_backends(settings, threads))


def end_with_parent(parent: int) -> None:
    """Make this process end when ``parent`` (its parent's pid) dies, however it dies: on
    Linux the kernel sends it SIGTERM then; if the parent died before the request, now."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)


def _work(job: VideoJob) -> dict:
    settings, backends = _WORKER
    return analyse(job, settings, backends)


def _crash_message(kind: str, exc: BaseException) -> str:
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return (f"the worker process died while analysing this video ({kind}: {first_line}); "
            "typical causes: out of memory or a crash in native decoding/model code")


def pooled_rows(jobs: Sequence[VideoJob], settings: Settings, workers: int,
                start_pool: Callable[[], Executor],
                work: Callable[[VideoJob], dict]) -> Iterator[dict]:
    """Rows of ``work(job)`` from a process pool that survives its workers dying.

    At most ``workers`` jobs are in flight. When the pool breaks it is restarted; a job that
    was alone in flight gets a :func:`crash_row`, jobs that were in flight together are
    retried one at a time (so only the video that kills a worker by itself fails).
    """
    queue, suspects = deque(jobs), deque()
    running: dict[Future, VideoJob] = {}
    pool = start_pool()
    try:
        while queue or suspects or running:
            if suspects:
                if not running:
                    job = suspects.popleft()
                    running[pool.submit(work, job)] = job
            else:
                while queue and len(running) < workers:
                    job = queue.popleft()
                    running[pool.submit(work, job)] = job
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            if not any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                for future in done:
                    yield future.result()
                    del running[future]
                continue
            wait(running)   # a broken pool fails every pending future at once
            crashed = []
            for future, job in running.items():
                if isinstance(future.exception(), BrokenProcessPool):
                    crashed.append((job, future.exception()))
                else:
                    yield future.result()
            running.clear()
            pool.shutdown(wait=True, cancel_futures=True)
            pool = start_pool()
            if len(crashed) == 1:
                job, exc = crashed[0]
                yield crash_row(job, settings, _crash_message("BrokenProcessPool", exc))
            else:
                suspects.extend(job for job, _ in crashed)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _local(jobs: Sequence[VideoJob], settings: Settings, workers: int) -> Iterator[dict]:
    threads = _threads_per_worker(workers)
    if workers <= 1:
        backends = load_backends(settings, threads)
        for job in jobs:
            yield analyse(job, settings, backends)
        return

    def start_pool() -> ProcessPoolExecutor:
        # spawn: torch and onnxruntime are not fork-safe once their thread pools exist.
        return ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                                   initializer=_init_worker,
                                   initargs=(settings, threads, os.getpid()))

    yield from pooled_rows(jobs, settings, workers, start_pool, _work)


def _ray(jobs: Sequence[VideoJob], settings: Settings, workers: int) -> Iterator[dict]:
    import ray
    from ray.exceptions import RayActorError

    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):  # join the configured cluster as it is
            ray.init(log_to_driver=False)
        else:
            ray.init(num_cpus=max(2, workers), include_dashboard=False, log_to_driver=False)

    @ray.remote(num_cpus=1, max_restarts=0)
    class DensityWorker:
        def __init__(self, settings: Settings, threads: int) -> None:
            self.settings, self.backends = settings, load_backends(settings, threads)

        def analyse(self, job: VideoJob) -> dict:
            return analyse(job, self.settings, self.backends)

    threads = _threads_per_worker(workers)
    idle = [DensityWorker.remote(settings, threads) for _ in range(max(1, workers))]
    queue = deque(jobs)
    running: dict = {}   # object ref -> (actor, job)
    while queue or running:
        while queue and idle:
            actor, job = idle.pop(), queue.popleft()
            running[actor.analyse.remote(job)] = (actor, job)
        [ref], _ = ray.wait(list(running), num_returns=1)
        actor, job = running.pop(ref)
        try:
            row = ray.get(ref)
        except RayActorError as exc:
            row = crash_row(job, settings, _crash_message("RayActorError", exc))
            ray.kill(actor)
            actor = DensityWorker.remote(settings, threads)
        idle.append(actor)
        yield row


def run(jobs: Sequence[VideoJob], settings: Settings, out_dir: Path, workers: int = 1,
        executor: str = "local") -> list[dict]:
    """Analyse every job not yet in ``out_dir/per_video.jsonl``; returns all rows."""
    if executor not in EXECUTORS:
        raise ValueError(f"--backend must be one of {EXECUTORS}, got {executor!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "per_video.jsonl"
    wanted = {job.video_id for job in jobs}
    rows = [row for row in read_finished(path) if row.get("video_id") in wanted]
    done = {row["video_id"] for row in rows}
    todo = [job for job in jobs if job.video_id not in done]
    if done:
        print(f"resuming: {len(done)} of {len(wanted)} videos already in {path}")
    if not todo:
        return rows
    if settings.source in ("video", "both"):
        todo = with_probed_videos(todo)
    produce = _ray if executor == "ray" else _local
    with appending(path, RESUME) as handle, \
            tqdm(total=len(todo), desc="density", unit="video") as bar:
        for row in produce(todo, settings, workers):
            append_row(handle, row, RESUME)
            rows.append(row)
            bar.update()
    return rows
