"""Harness overhead at the size of the published test split, in every launch form.

16,925 questions over 3,385 videos (links to the sample's videos, tests/scaled_dataset.py),
lmms-eval's ``dummy`` model (no inference: what is left is the harness), the loopback judge
in a child process with 50 ms per call at ``EVADS_JUDGE_CONCURRENCY`` 16. Per launch form,
side by side in one run:

- the whole run against the judge-bound ideal (16,925 x 0.05 s / 16 = 52.9 s): ideal/wall,
  target >= 0.8;
- the rerun (every verdict in the judge cache: 0 judge calls), target <= 20 s, and its ratio
  to the floor: the same command with ``--limit 5`` (lmms-eval's import, its task index and
  our start-up, nothing that grows with the questions).

The scaled split's videos are links to the sample's 12 files, and links to one file are
probed once, so the first run probes 12 files, not 3,385. What a split of distinct files
pays once (never on a rerun: verdicts are cached) is printed apart: the probe's rate on
this machine, measured on the sample's files without the cache, and the time it gives for
the split's videos.

Exit status 1 when a target is missed. ``--videos N`` scales it down for a quick look.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from judge_server import ServerProcess  # noqa: E402
from scaled_dataset import scaled_test_split  # noqa: E402

from evads_tasks.core.video_probe import probe_video, probe_workers  # noqa: E402
from evads_tasks.tasks import INCLUDE_PATH  # noqa: E402

LATENCY_S = 0.05
CONCURRENCY = 16
TARGET_RATIO = 0.8
TARGET_RERUN_S = 20.0
BIN = Path(sys.executable).parent
FORMS = {
    "lmms_eval": [str(BIN / "lmms_eval")],
    "python -m lmms_eval": [sys.executable, "-m", "lmms_eval", "--include_path",
                            str(INCLUDE_PATH)],
}


def run(form: str, annotations: Path, out: Path, url: str, cache: Path,
        *flags: str) -> tuple[float, int]:
    """(seconds, judge calls) of one run of ``form``; raises when it fails."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVADS_")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               EVADS_ANNOTATIONS=str(annotations), EVADS_JUDGE_BASE_URL=url,
               EVADS_JUDGE_MODEL="loopback-fake-judge", EVADS_CACHE_DIR=str(cache),
               EVADS_JUDGE_CONCURRENCY=str(CONCURRENCY))
    command = [*FORMS[form], "--model", "dummy", "--model_args", "response=价格是69.9元。",
               "--tasks", "evads", "--output_path", str(out), "--log_samples", *flags]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{form} exited {done.returncode}: {done.stderr[-2000:]}")
    (results,) = out.rglob("*_results.json")
    usage = json.loads(results.read_text(encoding="utf-8"))["results"]["evads"]
    return seconds, usage["judge_usage,none"]["calls"]


def probe_rate(rounds: int = 10) -> tuple[float, int]:
    """(videos per second, workers) of the video probe without its cache, on the sample's
    files, with the workers ``probe_videos`` uses on this machine."""
    files = sorted((REPO / "data" / "sample" / "videos").glob("*.mp4")) * rounds
    workers = probe_workers(len(files))
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        verdicts = list(pool.map(probe_video, files))
    assert all(verdict.ok for verdict in verdicts)
    return len(files) / (time.perf_counter() - started), workers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=3385,
                        help="videos in the scaled test split (5 questions each)")
    parser.add_argument("--forms", nargs="+", choices=list(FORMS), default=list(FORMS))
    args = parser.parse_args(argv)
    questions = args.videos * 5
    ideal = questions * LATENCY_S / CONCURRENCY
    missed = False
    with tempfile.TemporaryDirectory(prefix="evads-scale-") as tmp:
        root = Path(tmp)
        annotations = scaled_test_split(REPO / "data" / "sample", root / "data", args.videos)
        print(f"{questions} questions, {args.videos} videos; dummy model; loopback judge "
              f"{LATENCY_S * 1000:.0f} ms/call at concurrency {CONCURRENCY}: judge-bound "
              f"ideal {ideal:.1f} s")
        print(f"{'launch form':22} {'run s':>7} {'ideal/run':>9} {'rerun s':>8} "
              f"{'floor s':>8} {'rerun/floor':>11}")
        for form in args.forms:
            cache = root / f"cache-{form}"
            server = ServerProcess(latency_s=LATENCY_S)  # one endpoint: the cache's key
            try:
                first, calls_first = run(form, annotations, root / f"out-{form}", server.url,
                                         cache)
                again, calls_again = run(form, annotations, root / f"rerun-{form}",
                                         server.url, cache)
                floor, _ = run(form, annotations, root / f"floor-{form}", server.url, cache,
                               "--limit", "5")
            finally:
                server.stop()
            ratio = ideal / first
            print(f"{form:22} {first:7.1f} {ratio:9.2f} {again:8.1f} {floor:8.1f} "
                  f"{again / floor:11.2f}   (judge calls: {calls_first}, then {calls_again})")
            missed |= calls_again != 0
            missed |= ratio < TARGET_RATIO or again > TARGET_RERUN_S
    rate, workers = probe_rate()
    print(f"video probe without its cache: {rate:.0f} videos/s on {workers} worker(s): "
          f"{args.videos} distinct files would add {args.videos / rate:.1f} s to a first "
          "run (never to a rerun)")
    print(f"targets: ideal/run >= {TARGET_RATIO}, rerun <= {TARGET_RERUN_S:g} s")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
