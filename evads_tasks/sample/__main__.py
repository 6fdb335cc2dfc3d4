"""``python -m evads_tasks.sample --out DIR --seed N``: generate the sample dataset."""

from __future__ import annotations

import argparse
import sys
import time

from .generate import generate_sample


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m evads_tasks.sample",
        description="Generate the synthetic E-VAds sample: 12 short ad videos, a test split "
                    "(8 videos, one per category), an SFT and an RL split (2 videos each; "
                    "no video in two splits), normalized annotations and script.json.")
    parser.add_argument("--out", default="data/sample", help="output folder (default data/sample)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the storyboards (default 0)")
    parser.add_argument("--no-videos", action="store_true",
                        help="write only script.json and the annotations (no .done stamp)")
    parser.add_argument("--workers", type=int, default=2, help="videos encoded at once")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    try:
        out = generate_sample(args.out, args.seed, videos=not args.no_videos,
                              workers=args.workers)
    except RuntimeError as exc:  # missing system tools: say which, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"sample written to {out} in {time.perf_counter() - began:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
