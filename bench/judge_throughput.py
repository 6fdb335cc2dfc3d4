"""Judge client throughput against the loopback judge server (a stand-in, not a real model).

500 judge calls with 50 ms of added server latency at concurrency 16: the ideal rate is
16 / 0.05 = 320 calls/s, the target is an achieved/ideal ratio >= 0.8 (exit status 1 when
missed). Then the same 500
requests again, now served from the on-disk cache, to set the per-call cost of a cache hit
beside that of a miss, in one run. The server runs in a child process, as a real judge
server would, so that its Python threads do not share the client's interpreter lock.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from judge_server import ServerProcess  # noqa: E402

from evads_tasks.core.judge import HttpJudge, JudgeRequest  # noqa: E402

SEQUENTIAL_MISSES = 20
TARGET_RATIO = 0.8


def requests(n: int) -> list[JudgeRequest]:
    return [JudgeRequest(question=f"问题{i}：视频的核心卖点是什么？",
                         metadata=f"Time {i % 30}s: OCR Text: [限时{i}元] ; ASR Text: \"下单\"",
                         clues="字幕强调限时价格", reference=f"限时{i}元的价格优势",
                         answer=f"视频突出限时{i}元") for i in range(n)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    items = requests(args.calls)
    latency = args.latency_ms / 1000
    server = ServerProcess(latency_s=latency)
    with tempfile.TemporaryDirectory() as cache_dir, \
            HttpJudge(server.url, "loopback-fake-judge", cache_dir=cache_dir,
                      concurrency=args.concurrency, progress=False) as judge:
        started = time.perf_counter()
        misses = judge.judge_many(items)
        miss_s = time.perf_counter() - started
        started = time.perf_counter()
        hits = [judge.judge(item) for item in items]
        hit_s = time.perf_counter() - started
        fresh = requests(args.calls + SEQUENTIAL_MISSES)[args.calls:]
        started = time.perf_counter()
        sequential = [judge.judge(item) for item in fresh]
        sequential_s = (time.perf_counter() - started) / SEQUENTIAL_MISSES
    calls, _ = server.stop()
    failed = sum(r.score is None for r in misses + sequential)
    if failed or calls != args.calls + SEQUENTIAL_MISSES or not all(r.cached for r in hits):
        print(f"error: {failed} failed, {calls} HTTP calls, "
              f"{sum(r.cached for r in hits)} cache hits", file=sys.stderr)
        return 1
    achieved = args.calls / miss_s
    ideal = args.concurrency / latency
    print("judge throughput (loopback fake judge server, not a real model)")
    print(f"  {args.calls} calls, {args.latency_ms:g} ms server latency, "
          f"concurrency {args.concurrency}")
    print(f"  achieved rate : {achieved:8.1f} calls/s")
    print(f"  ideal rate    : {ideal:8.1f} calls/s")
    print(f"  ratio         : {achieved / ideal:8.2f}   (target >= {TARGET_RATIO:.2f})")
    hit_us = hit_s / args.calls * 1e6
    print(f"  cache miss    : {sequential_s * 1e6:8.0f} µs/call one at a time "
          f"({sequential_s * 1e6 - latency * 1e6:.0f} µs over the server latency), "
          f"{miss_s / args.calls * 1e6:.0f} µs/call amortized at concurrency {args.concurrency}")
    print(f"  cache hit     : {hit_us:8.0f} µs/call one at a time (SQLite), "
          f"{sequential_s * 1e6 / hit_us:.0f}x cheaper than a miss; HTTP calls on the rerun: 0")
    met = achieved / ideal >= TARGET_RATIO
    print(f"{'target met' if met else 'target MISSED'}: achieved / ideal rate >= "
          f"{TARGET_RATIO:.2f}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
