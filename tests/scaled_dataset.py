"""A test split of any size from the bundled sample, for scale and multi-rank runs.

Each new video is a symbolic link to one of the sample's videos and carries that video's
five questions under new ids (``v00001``, ``v00001_q1``...), each question text marked with
its video so that no two questions are the same judge request (the judge cache would answer
a repeat without a call), so a run reads real videos and a judge sees real questions, at
the size the test or benchmark needs (the published test split: 3,385 videos, 16,925
questions).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def scaled_test_split(sample_dir: Path, out_dir: Path, videos: int) -> Path:
    """``out_dir/annotations/test.parquet`` with ``videos`` videos (in ``out_dir/videos``)."""
    rows = pd.read_parquet(sample_dir / "annotations" / "test.parquet")
    originals = sorted(rows["video_id"].unique())
    (out_dir / "annotations").mkdir(parents=True, exist_ok=True)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    parts = []
    for number in range(videos):
        source = originals[number % len(originals)]
        video_id = f"v{number + 1:05d}"
        link = out_dir / "videos" / f"{video_id}.mp4"
        if not link.exists():
            link.symlink_to((sample_dir / "videos" / f"{source}.mp4").resolve())
        part = rows[rows["video_id"] == source].copy()
        part["ques_id"] = [qid.replace(source, video_id, 1) for qid in part["ques_id"]]
        part["video_id"] = video_id
        part["question"] = [f"{question}（{video_id}）" for question in part["question"]]
        parts.append(part)
    path = out_dir / "annotations" / "test.parquet"
    pd.concat(parts, ignore_index=True).to_parquet(path, index=False)
    return path
