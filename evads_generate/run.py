"""A whole run: perceive each video, generate for it, append it, resume where it stopped.

Perception (CPU-bound models) runs in this thread, one video after another, while the
videos already perceived are generated for on worker threads (network-bound): the LLM is
kept busy while the next video is decoded. Each finished video is appended to
``videos.jsonl`` as soon as it is done, from whichever thread finished it. A failure no
retry can mend (a bad key, a wrong model) stops the run with that error; anything else is
recorded on its video and the run goes on. A row that cannot be written (a full disk) stops
the run with :class:`~evads_tasks.core.write_failure.WriteFailed`; the rows before it stay.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from evads_density.runner import append_row
from evads_tasks.core.write_failure import WriteFailed

from .inputs import VideoInput
from .perception import Perceiver, frame_urls, from_record
from .pipeline import Generator
from .records import VideoMeta, VideoResult
from .state import RESUME, RunFolder


@dataclass
class RunOutcome:
    results: list[VideoResult]     # every video's latest result, in input order
    resumed: int                   # videos found finished in the folder


def _meta(item: VideoInput, perceived: dict[str, VideoMeta], perceiver: Perceiver | None,
          probes: dict, handle, lock: threading.Lock) -> VideoMeta:
    if not item.raw:
        return from_record(item.record, item.video_path)
    if item.video_id in perceived:
        return perceived[item.video_id]
    meta = perceiver.perceive(item.video_id, item.video_path, probes.get(Path(item.video_path)))
    with lock:
        append_row(handle, meta.to_dict(), RESUME)
    return meta


def run_videos(items: Sequence[VideoInput], folder: RunFolder, generator: Generator,
               perceiver: Perceiver | None, workers: int, frames: int = 0,
               progress: bool = True) -> RunOutcome:
    finished = folder.finished()
    todo = [item for item in items if item.video_id not in finished]
    perceived = folder.perceived()
    raw = [item.video_path for item in todo if item.raw and item.video_id not in perceived]
    probes = perceiver.probe(raw) if raw and perceiver is not None else {}
    lock = threading.Lock()
    fatal: list[BaseException] = []
    new: dict[str, VideoResult] = {}
    bar = tqdm(total=len(items), initial=len(items) - len(todo), desc="videos",
               unit="video", disable=not progress)

    with folder.open_perception() as perception_log, folder.open_videos() as video_log, \
            ThreadPoolExecutor(max_workers=workers) as pool:
        def finish(future: Future) -> None:
            try:
                result = future.result()
            except BaseException as error:  # recorded, raised in the main thread
                with lock:
                    fatal.append(error)
                return
            with lock:
                try:
                    append_row(video_log, result.to_dict(), RESUME)
                except WriteFailed as error:  # a callback's error would be lost: raised later
                    fatal.append(error)
                    return
                new[result.video_id] = result
                bar.update(1)
                bar.set_postfix(calls=sum(generator.llm.stats.calls.values()))

        futures = []
        for item in todo:
            if fatal:
                break
            meta = _meta(item, perceived, perceiver, probes, perception_log, lock)
            urls = frame_urls(item.video_path, frames) if frames and item.video_path and \
                not meta.error else None
            future = pool.submit(generator.process, meta, urls)
            future.add_done_callback(finish)
            futures.append(future)
        for future in futures:
            if fatal:
                future.cancel()
        pool.shutdown(wait=True)
    bar.close()
    if fatal:
        raise fatal[0]  # a FatalLLMError, or a bug: never swallowed
    results = {**finished, **new}
    return RunOutcome([results[item.video_id] for item in items if item.video_id in results],
                      len(finished))
