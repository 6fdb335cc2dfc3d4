"""Running the per-video analysis over a collection: in-process, worker processes or Ray.

Rows are appended to ``per_video.jsonl`` and flushed as each video finishes, so a killed
run resumes where it stopped: finished videos (error rows included) are skipped and a
half-written last line is dropped. Models load once per worker (pool initializer / actor).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from .analysis import Backends, Settings, analyse, load_backends
from .sources import VideoJob

EXECUTORS = ("local", "ray")
_WORKER: tuple[Settings, Backends] | None = None


def read_finished(path: Path) -> list[dict]:
    """Rows already written; a torn last line (a killed writer) is cut from the file."""
    if not path.exists():
        return []
    rows, good_bytes = [], 0
    with path.open("rb") as handle:
        for line in handle:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
            good_bytes += len(line)
    if good_bytes != path.stat().st_size:
        with path.open("r+b") as handle:
            handle.truncate(good_bytes)
    return rows


def append_row(handle, row: dict) -> None:
    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    handle.flush()
    os.fsync(handle.fileno())


def _threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def _init_worker(settings: Settings, threads: int) -> None:
    global _WORKER
    _WORKER = (settings, load_backends(settings, threads))


def _work(job: VideoJob) -> dict:
    settings, backends = _WORKER
    return analyse(job, settings, backends)


def _local(jobs: Sequence[VideoJob], settings: Settings, workers: int) -> Iterator[dict]:
    threads = _threads_per_worker(workers)
    if workers <= 1:
        backends = load_backends(settings, threads)
        for job in jobs:
            yield analyse(job, settings, backends)
        return
    # spawn: torch and onnxruntime are not fork-safe once their thread pools exist.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                             initializer=_init_worker, initargs=(settings, threads)) as pool:
        for future in as_completed([pool.submit(_work, job) for job in jobs]):
            yield future.result()


def _ray(jobs: Sequence[VideoJob], settings: Settings, workers: int) -> Iterator[dict]:
    import ray
    from ray.util import ActorPool

    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):  # join the configured cluster as it is
            ray.init(log_to_driver=False)
        else:
            ray.init(num_cpus=max(2, workers), include_dashboard=False, log_to_driver=False)

    @ray.remote(num_cpus=1)
    class DensityWorker:
        def __init__(self, settings: Settings, threads: int) -> None:
            self.settings, self.backends = settings, load_backends(settings, threads)

        def analyse(self, job: VideoJob) -> dict:
            return analyse(job, self.settings, self.backends)

    threads = _threads_per_worker(workers)
    actors = [DensityWorker.remote(settings, threads) for _ in range(max(1, workers))]
    yield from ActorPool(actors).map_unordered(lambda a, job: a.analyse.remote(job), jobs)


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
    produce = _ray if executor == "ray" else _local
    with path.open("a", encoding="utf-8") as handle, tqdm(
            total=len(todo), desc="density", unit="video") as bar:
        for row in produce(todo, settings, workers):
            append_row(handle, row)
            rows.append(row)
            bar.update()
    return rows
