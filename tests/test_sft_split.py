"""The SFT split as the authors publish it, read by every command.

The file is built here to the published column list (``data_source``, ``videos``, ``prompt``,
``ability``, ``answer``, ``extra_info``; no ``reward_model``): the whole
``<think>..</think>\\n<answer>..</answer>`` target is a top-level ``answer``. Every command
must read it with the reference = the ``<answer>`` part, the reasoning target = the whole
``answer``, the metadata from the prompt and no clues.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from judge_server import JudgeServer
from lmms_eval.tasks import TaskManager
from paths import REPO

from evads_rl.data import FrameSettings, build_dataset
from evads_rl.verl_data import write_verl_parquet
from evads_tasks.core.annotations import AnnotationError, load_annotations
from evads_tasks.core.annotations.schemas import SFT_COLUMNS
from evads_tasks.core.judge.prompts import SECTION_CLUES, SECTION_METADATA, read_sections
from evads_tasks.tasks import INCLUDE_PATH
from evads_tasks.tasks.utils import process_results

METADATA = ("Category: 服饰鞋包\nDuration: 4s\n\n[Time-aligned Events]:\n"
            'Time 0s: OCR Text: [新品上市 | 限时五折] ; ASR Text: "姐妹们这件真的绝了"\n'
            'Time 1s: ASR Text: "面料是纯棉的"\n'
            "Time 2s: OCR Text: [可穿到140斤]")
QUESTIONS = [
    "视频中这件T恤的价格和尺码范围分别是什么？",
    "当语音提到“面料是纯棉的”时，画面中衣服是什么颜色？",
    "视频如何利用限时折扣制造紧迫感促成下单？",
    "视频锁定哪类核心受众，试图解决何种穿搭痛点？",
    "视频宣称“真的绝了”是否属于违规绝对化用语？",
]
INSTRUCTION = "Think first, then answer within 50 words as <think>...</think> <answer>...</answer>"


def published_rows(video: str) -> list[dict]:
    """Five SFT rows of one video, column for column as the authors publish them."""
    return [{
        "data_source": "EVAdsBench",
        "videos": f"../videos/{video}.mp4",
        "prompt": [{"content": f"<video>{METADATA}\n\n Question: {question}\n{INSTRUCTION}",
                    "role": "user"}],
        "ability": "QA",
        "answer": (f"<think>第{n}步：0s字幕写着限时五折。</think>\n"
                   f"<answer>参考答案{n}：纯棉T恤。</answer>"),
        "extra_info": {"id": f"{video}_q{n}", "video_path": f"../videos/{video}.mp4"},
    } for n, question in enumerate(QUESTIONS)]


@pytest.fixture(scope="module")
def sft_tree(tmp_path_factory) -> Path:
    """``annotations/sft.parquet`` (the published columns) and ``videos/`` for two videos."""
    root = tmp_path_factory.mktemp("sft")
    (root / "annotations").mkdir()
    (root / "videos").mkdir()
    rows = published_rows("701") + published_rows("702")
    table = pa.Table.from_pylist(rows)
    assert table.column_names == list(SFT_COLUMNS)
    pq.write_table(table, root / "annotations" / "sft.parquet")
    for video in ("701", "702"):
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                        "testsrc=size=96x64:rate=4:duration=4", "-c:v", "libx264",
                        "-pix_fmt", "yuv420p", str(root / "videos" / f"{video}.mp4")],
                       check=True)
    return root


def test_the_loader_reads_reference_target_metadata_and_no_clues(sft_tree):
    records = load_annotations(sft_tree / "annotations" / "sft.parquet")
    assert len(records) == 10 and {r.split for r in records} == {"sft"}
    by_id = {r.question_id: r for r in records}
    first = by_id["701_q0"]
    assert first.answer == "参考答案0：纯棉T恤。"
    assert first.reasoning_target == published_rows("701")[0]["answer"]
    assert first.metadata == METADATA and first.clues == ""
    assert (first.category, first.duration, len(first.events)) == ("Apparel & Bags", 4.0, 3)
    assert first.question == QUESTIONS[0] and first.video_file == "../videos/701.mp4"
    assert [by_id[f"701_q{n}"].task for n in range(5)] == ["BP", "CM", "ML", "CI", "RC"]


def test_summary_command(sft_tree):
    done = subprocess.run([sys.executable, "-m", "evads_tasks.core.annotations", "summary",
                           str(sft_tree / "annotations" / "sft.parquet"), "--json"],
                          capture_output=True, text=True, cwd=REPO, check=True)
    summary = json.loads(done.stdout)
    assert (summary["videos"], summary["questions"], summary["per_split"]) == (2, 10,
                                                                               {"sft": 10})


def test_the_lmms_eval_tasks_judge_the_answer_part_with_no_clues(sft_tree, monkeypatch,
                                                                 tmp_path):
    monkeypatch.setenv("EVADS_ANNOTATIONS", str(sft_tree / "annotations" / "sft.parquet"))
    monkeypatch.setenv("EVADS_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("EVADS_VIDEO_DIR", "EVADS_PROTOCOL", "EVADS_JUDGE", "EVADS_PROMPT"):
        monkeypatch.delenv(name, raising=False)
    with JudgeServer(lambda messages: "Answer: 1.0") as server:
        monkeypatch.setenv("EVADS_JUDGE_BASE_URL", server.url)
        monkeypatch.setenv("EVADS_JUDGE_MODEL", "loopback")
        manager = TaskManager("ERROR", include_path=str(INCLUDE_PATH), include_defaults=False)
        task = manager.load_task_or_group(["evads_ci"])["evads_ci"]
        doc = next(iter(task.test_docs()))
        assert (doc["answer"], doc["clues"], doc["metadata"]) == ("参考答案3：纯棉T恤。", "",
                                                                  METADATA)
        assert task.doc_to_text(doc).startswith(METADATA + "\n\n")
        process_results(doc, ["<answer>纯棉T恤</answer>"])
        sections = read_sections(server.requests[-1]["messages"][-1]["content"])
    assert sections[SECTION_METADATA] == METADATA
    assert sections[SECTION_CLUES] == "(none)"  # judged as absent, never invented


def test_density_from_the_annotations(sft_tree, tmp_path):
    out = tmp_path / "density"
    done = subprocess.run([sys.executable, "-m", "evads_density",
                           str(sft_tree / "annotations" / "sft.parquet"), "--source",
                           "annotations", "--out", str(out)], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "per_video.jsonl").read_text().splitlines()]
    assert sorted(row["video_id"] for row in rows) == ["701", "702"]
    assert all(not row.get("error") for row in rows)


def test_the_sft_stage_trains_on_the_whole_answer(sft_tree):
    ds = build_dataset(sft_tree / "annotations" / "sft.parquet", "sft", sft_tree / "videos",
                       FrameSettings(num_frames=2, max_side=64))
    row = next(r for r in ds if r["question_id"] == "701_q1")
    assert row["completion"][0]["content"][0]["text"] == published_rows("701")[1]["answer"]
    assert (row["reference"], row["clues"], row["metadata"]) == ("参考答案1：纯棉T恤。", "",
                                                                 METADATA)
    assert f"Question: {QUESTIONS[1]}" in row["prompt"][0]["content"][-1]["text"]


def test_the_verl_export_adds_the_reward_model_verl_reads(sft_tree, tmp_path):
    out = write_verl_parquet(sft_tree / "annotations" / "sft.parquet", sft_tree / "videos",
                             tmp_path / "verl.parquet")
    row = pq.read_table(out).to_pylist()[0]
    assert row["answer"] == published_rows("701")[0]["answer"]  # released columns kept
    assert row["reward_model"]["ground_truth"] == "<answer>参考答案0：纯棉T恤。</answer>"
    assert row["reward_model"]["verifier"] == [{"clues": "", "meta_info": METADATA}]
    assert row["extra_info"]["clues"] == "" and row["extra_info"]["meta_info"] == METADATA
    assert row["videos"] == [{"video": str((sft_tree / "videos" / "701.mp4").resolve())}]


def test_a_row_of_no_schema_names_its_missing_columns(tmp_path):
    rows = [{key: value for key, value in row.items() if key != "answer"}
            for row in published_rows("701")]
    path = tmp_path / "cut.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(AnnotationError) as caught:
        load_annotations(path)
    message = str(caught.value)
    assert str(path) in message and "match no E-VAds schema" in message
    assert "an SFT row (published split) also needs answer;" in message
    assert "an RL row (verl-style) also needs reward_model;" in message
