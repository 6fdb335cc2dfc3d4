"""Annotation files -> TRL datasets: frames really decoded, prompts, columns, errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from paths import RL_PARQUET, needs_rl_parquet

from evads_rl.data import FrameSettings, build_dataset, frame_times, load_prompted_records
from evads_tasks.core.annotations import AnnotationError, EvadsRecord, Event, write_schema


def _video(path: Path, seconds: int, size: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate=10", "-t", str(seconds), "-pix_fmt", "yuv420p",
                    str(path)], check=True)


def _record(qid: str, video: str) -> EvadsRecord:
    return EvadsRecord(
        question_id=qid, video_id=video, video_file=f"../videos/{video}.mp4",
        question=f"视频第{qid}个问题：价格是多少？", answer="29.9元", task="BP",
        task_inferred=False, split="test", clues="第3秒字幕显示29.9元",
        events=(Event(3, 3, ("限时特价29.9元",), "只要二十九块九"),), duration=4.0,
        category="Food & Healthcare")


@pytest.fixture(scope="module")
def tiny_tree(tmp_path_factory) -> Path:
    """Two real H.264 videos and the same three questions written in every schema."""
    root = tmp_path_factory.mktemp("rl_data")
    (root / "videos").mkdir()
    _video(root / "videos" / "v1.mp4", 4, "320x180")
    _video(root / "videos" / "v2.mp4", 2, "180x320")
    records = [_record("q1", "v1"), _record("q2", "v1"), _record("q3", "v2")]
    for schema in ("test", "rl", "sft"):
        write_schema(records, root / f"{schema}.parquet", schema)
    return root


@pytest.mark.parametrize("schema, stage", [("rl", "grpo"), ("sft", "sft"), ("test", "grpo"),
                                           ("test", "sft")])
def test_dataset_columns_frames_and_prompt(tiny_tree, schema, stage):
    settings = FrameSettings(num_frames=3, max_side=64)
    ds = build_dataset(tiny_tree / f"{schema}.parquet", stage, tiny_tree / "videos", settings)
    assert len(ds) == 3
    row = ds[0]
    assert len(row["images"]) == 3
    assert max(row["images"][0].size) == 64 and row["images"][0].size[0] > row["images"][0].size[1]
    assert max(ds[2]["images"][0].size) == 64 and ds[2]["images"][0].size[0] < 64  # portrait
    content = row["prompt"][0]["content"]
    assert [part["type"] for part in content] == ["image"] * 3 + ["text"]
    text = content[-1]["text"]
    assert "<video>" not in text and "3 frames sampled at" in text
    # SFT prompts (the published SFT layout) have the question on its own line, no label
    label = "\n" if stage == "sft" else "Question: "
    assert f"{label}视频第q1个问题：价格是多少？\n" in text and "<think>" in text
    assert (row["question"], row["reference"], row["question_id"]) == (
        "视频第q1个问题：价格是多少？", "29.9元", "q1")
    # the published SFT split has no clues: the judge is shown none
    assert row["clues"] == ("" if schema == "sft" else "第3秒字幕显示29.9元")
    assert "限时特价29.9元" in row["metadata"]
    assert row["accuracy_ratio"] == 1.0 and row["format_ratio"] == 1.0
    if stage == "sft":
        target = row["completion"][0]["content"][0]["text"]
        assert target.startswith("<think>") and target.endswith("<answer>29.9元</answer>")
    else:
        assert "completion" not in ds.column_names


def test_frames_are_spread_over_the_video(tiny_tree):
    ds = build_dataset(tiny_tree / "rl.parquet", "grpo", tiny_tree / "videos",
                       FrameSettings(num_frames=4, max_side=64), limit=1)
    text = ds[0]["prompt"][0]["content"][-1]["text"]
    assert "sampled at 0.5s, 1.5s, 2.5s, 3.5s" in text  # segment centres of the 4 s video
    first, last = ds[0]["images"][0], ds[0]["images"][-1]
    assert first.tobytes() != last.tobytes()  # testsrc2 moves: different frames were decoded
    assert frame_times(4.0, 4) == [0.5, 1.5, 2.5, 3.5]


def test_missing_video_names_the_file_and_question(tiny_tree, tmp_path):
    with pytest.raises(AnnotationError, match=r"v1\.mp4 not found \(question q1"):
        build_dataset(tiny_tree / "rl.parquet", "grpo", tmp_path)


def test_undecodable_video_is_a_clear_error(tiny_tree, tmp_path):
    (tmp_path / "v1.mp4").write_bytes(b"not a video")
    with pytest.raises(AnnotationError, match="cannot decode video"):
        build_dataset(tiny_tree / "rl.parquet", "grpo", tmp_path, limit=1)


def test_bad_settings_and_stage_are_rejected(tiny_tree):
    with pytest.raises(ValueError, match="num_frames"):
        FrameSettings(num_frames=0)
    with pytest.raises(ValueError, match="stage"):
        load_prompted_records(tiny_tree / "rl.parquet", "dpo")


@needs_rl_parquet
def test_rl_split_keeps_the_authors_prompt_text():
    import pyarrow.parquet as pq

    prompted = load_prompted_records(RL_PARQUET, "grpo")
    first_row = pq.read_table(RL_PARQUET).slice(0, 1).to_pylist()[0]
    record, text = prompted[0]
    assert text == first_row["prompt"][0]["content"]
    assert record.question_id == str(first_row["extra_info"]["id"])
    assert len(prompted) == 980
