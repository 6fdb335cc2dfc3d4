"""Q&A generator throughput against a scripted loopback LLM (a stand-in, not a real model).

The sample's annotations, copied ``--copies`` times under new video ids (each copy's
metadata differs by its duration line, so no prompt repeats across copies except the blind
check's, which holds only the question), go through the whole per-video pipeline: five role
proposals, form/grounding/near-duplicate checks, lazy selection with the answerability and
blind calls and their judge calls. The server adds ``--latency-ms`` (200) to every call and
runs in a child process, as a real server would; at most ``--concurrency`` (16) calls are in
flight. The ideal time is the calls actually made times the latency over the concurrency;
the ratio ideal / achieved is reported for candidates per second, with calls per accepted
question. Target: ratio >= 0.8 (a video's calls depend on each other in three steps, propose
-> answer -> judge, so the pipeline fills at the start of a run and drains at its end; many
videos in flight keep the gate full between). Exit status 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from judge_server import ServerProcess  # noqa: E402
from qa_llm_server import ScriptedAdLLM  # noqa: E402

from evads_generate.checks import Deduplicator  # noqa: E402
from evads_generate.inputs import collect_inputs  # noqa: E402
from evads_generate.llm import LLM  # noqa: E402
from evads_generate.pipeline import Generator  # noqa: E402
from evads_generate.records import COMPLETE  # noqa: E402
from evads_generate.run import run_videos  # noqa: E402
from evads_generate.settings import GeneratorSettings  # noqa: E402
from evads_generate.state import RunFolder  # noqa: E402
from evads_tasks.core.annotations import load_annotations, render_metadata, write_schema  # noqa: E402
from evads_tasks.core.annotations.categories import chinese_category  # noqa: E402
from evads_tasks.core.chat.client import ChatClient  # noqa: E402
from evads_tasks.core.judge import HttpJudge, JudgeCache  # noqa: E402

TARGET_RATIO = 0.8


def sample_dir() -> Path:
    """The bundled sample (its annotations and script; videos are not needed)."""
    folder = REPO / "data" / "sample"
    if not (folder / "script.json").is_file():
        from evads_tasks.sample import generate_sample

        folder = Path(tempfile.mkdtemp(prefix="evads-sample-"))
        generate_sample(folder, 0, progress=False, videos=False)
    return folder


def copied_annotations(sample: Path, copies: int, path: Path) -> Path:
    records = load_annotations(sample / "annotations" / "test.parquet")
    copied = []
    for k in range(copies):
        for r in records:
            duration = (r.duration or 10) + k
            copied.append(replace(
                r, video_id=f"{r.video_id}_c{k}", question_id=f"{r.question_id}_c{k}",
                video_file=f"{r.video_id}_c{k}.mp4", duration=duration,
                metadata=render_metadata(chinese_category(r.category), duration, r.events)))
    return write_schema(copied, path, "test")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=6)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    latency = args.latency_ms / 1000
    sample = sample_dir()
    server = ServerProcess(partial(ScriptedAdLLM, sample / "script.json", faults=False),
                           latency)
    url = server.url
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        items, _ = collect_inputs(str(copied_annotations(sample, args.copies,
                                                         work / "test.parquet")))
        settings = GeneratorSettings()
        client = ChatClient(url, "scripted-ad-llm", concurrency=args.concurrency)
        judge = HttpJudge(url, "scripted-ad-llm", cache_dir=work / "cache",
                          concurrency=args.concurrency, progress=False)
        llm = LLM(client, JudgeCache(work / "cache"), judge, args.concurrency)
        dedup = Deduplicator(settings.duplicate_threshold)
        dedup.similarities(["warm", "up"])  # the embedding model loads once, before timing
        folder = RunFolder(work / "out")
        folder.start({}, fresh=False)
        started = time.perf_counter()
        outcome = run_videos(items, folder, Generator(llm, dedup, settings), None,
                             args.concurrency, progress=False)
        elapsed = time.perf_counter() - started
    served, in_flight = server.stop()
    calls = sum(llm.stats.calls.values())
    candidates = sum(len(r.candidates) for r in outcome.results)
    accepted = sum(len(r.selected) for r in outcome.results)
    complete = sum(r.status == COMPLETE for r in outcome.results)
    if calls != served or sum(llm.stats.failed.values()):
        print(f"error: {calls} calls counted, {served} served, "
              f"{sum(llm.stats.failed.values())} failed", file=sys.stderr)
        return 1
    ideal_s = calls * latency / args.concurrency
    ratio = ideal_s / elapsed
    print("Q&A generator throughput (scripted loopback LLM, not a real model)")
    print(f"  {len(items)} videos ({complete} complete), {args.latency_ms:g} ms server "
          f"latency, concurrency {args.concurrency} (most in flight: {in_flight})")
    print(f"  calls         : {calls} ({calls / len(items):.1f} per video; "
          f"{sum(llm.stats.cached.values())} more answered from the cache)")
    print(f"  candidates/s  : {candidates / elapsed:8.1f} achieved, "
          f"{candidates / ideal_s:8.1f} ideal ({candidates} candidates in {elapsed:.1f} s, "
          f"ideal {ideal_s:.1f} s)")
    print(f"  ratio         : {ratio:8.2f}   (target >= {TARGET_RATIO:.2f})")
    print(f"  calls per accepted question: {calls / max(accepted, 1):.2f} "
          f"({accepted} accepted)")
    met = ratio >= TARGET_RATIO
    print(f"{'target met' if met else 'target MISSED'}: achieved / ideal rate >= "
          f"{TARGET_RATIO:.2f}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
