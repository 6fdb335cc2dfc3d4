"""The E-VAds lmms-eval tasks: registration, data per task, prompt, and a missing video.

Self-contained: a two-video benchmark written here in the test-split schema with
real (tiny) H.264 videos made by ffmpeg; tasks are built by lmms-eval's own TaskManager.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from lmms_eval import utils as lmms_utils
from lmms_eval.tasks import TaskManager

from evads_tasks.core.annotations import (
    TASK_CODES,
    TASKS,
    EvadsRecord,
    write_schema,
)
from evads_tasks.core.judge import NO_ANSWER
from evads_tasks.core.responses import judged_text
from evads_tasks.tasks import INCLUDE_PATH
from evads_tasks.tasks.ablation import CONDITIONS
from evads_tasks.tasks.conditions import task_of
from evads_tasks.tasks.outcome import RunStopped
from evads_tasks.tasks.utils import EVADS_INSTRUCTION, process_results

TASK_NAMES = {f"evads_{code.lower()}": code for code in TASK_CODES}
GROUPS = {"evads_perception": ["evads_bp", "evads_cm"],
          "evads_reasoning": ["evads_ml", "evads_ci", "evads_rc"],
          "evads": ["evads_perception", "evads_reasoning"]}
METADATA = ('Category: 美容彩妆\nDuration: 2s\n\n[Time-aligned Events]:\n'
            'Time 1s: OCR Text: [限时特价 ¥59.9] ; ASR Text: "今天只要五十九块九"')


@pytest.fixture(scope="module")
def task_manager() -> TaskManager:
    return TaskManager("ERROR", include_path=str(INCLUDE_PATH), include_defaults=False)


@pytest.fixture()
def benchmark(tmp_path, monkeypatch) -> Path:
    """``annotations/test.parquet`` + ``videos/`` (the authors' layout) for two videos."""
    records = [EvadsRecord(
        question_id=f"{video}-{code}", video_id=video, video_file=f"../videos/{video}.mp4",
        question=f"{TASKS[code].name} question about video {video}?",
        answer=f"reference answer {code} {video}", task=code, task_inferred=False,
        split="test", clues=f"clue for {code}", metadata=METADATA, category="美容彩妆",
        duration=2.0) for video in ("101", "102") for code in TASK_CODES]
    annotations = write_schema(records, tmp_path / "annotations" / "test.parquet", "test")
    (tmp_path / "videos").mkdir()
    for video in ("101", "102"):
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                        "testsrc=size=64x36:rate=4:duration=2", "-c:v", "libx264",
                        "-pix_fmt", "yuv420p", str(tmp_path / "videos" / f"{video}.mp4")],
                       check=True)
    monkeypatch.setenv("EVADS_ANNOTATIONS", str(annotations))
    monkeypatch.delenv("EVADS_VIDEO_DIR", raising=False)
    monkeypatch.delenv("EVADS_PROMPT", raising=False)
    monkeypatch.delenv("EVADS_JUDGE_BASE_URL", raising=False)
    monkeypatch.setenv("EVADS_JUDGE", "similarity")
    monkeypatch.setenv("EVADS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def _build(task_manager: TaskManager, name: str):
    return task_manager.load_task_or_group([name])[name]


def _build_error(task_manager: TaskManager, name: str) -> str:
    """What a failed build says: the run stops (``RunStopped``, which lmms-eval neither
    retries nor catches) with the cause's ``error:`` lines."""
    with pytest.raises(RunStopped) as caught:
        _build(task_manager, name)
    return "\n".join(caught.value.lines)


def test_every_name_resolves_to_our_files(task_manager):
    """The full tasks beside the template; each modality condition's in its own folder
    (tests/test_audit.py)."""
    for name in {*TASK_NAMES, *GROUPS}:
        assert Path(task_manager.task_index[name]["yaml_path"]).parent == INCLUDE_PATH
    for name in task_manager.all_tasks:
        assert INCLUDE_PATH in Path(task_manager.task_index[name]["yaml_path"]).parents
    assert set(task_manager.all_subtasks) == {task_of(condition, code) for code in TASK_CODES
                                              for condition in CONDITIONS.values()}
    assert set(GROUPS) <= set(task_manager.all_groups)


def test_groups_hold_their_tasks_and_aggregate_by_size(task_manager):
    for group, members in GROUPS.items():
        config = lmms_utils.load_yaml_config(task_manager.task_index[group]["yaml_path"])
        assert config["task"] == members
        aggregated = {m["metric"]: m for m in config["aggregate_metric_list"]}
        assert set(aggregated) >= {"evads_r5", "evads_r3", "evads_r2", "evads_g", "judge_errors",
                                   "evads_run"}
        assert all(aggregated[m]["weight_by_size"] for m in ("evads_r5", "evads_r2", "evads_g"))


def test_task_table_matches_the_task_labels():
    rows = [json.loads(line) for line in
            (INCLUDE_PATH / "task_table.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["code"], r["name"], r["chinese"], r["dimension"]) for r in rows] == [
        (t.code, t.name, t.chinese, t.dimension) for t in TASKS.values()]


def test_each_task_sees_only_its_questions_with_resolved_videos(task_manager, benchmark):
    for name, code in TASK_NAMES.items():
        task = _build(task_manager, name)
        docs = list(task.test_docs())
        assert [d["question_id"] for d in docs] == [f"101-{code}", f"102-{code}"]
        assert {d["task"] for d in docs} == {code}
        assert all(d["category"] == "Beauty & Cosmetics" for d in docs)
        # videos found beside annotations/ (the authors' layout) without EVADS_VIDEO_DIR
        assert task.doc_to_visual(docs[0]) == [str(benchmark / "videos" / "101.mp4")]


def test_answer_prompt_and_reasoning_prompt(task_manager, benchmark, monkeypatch):
    task = _build(task_manager, "evads_ci")
    doc = next(iter(task.test_docs()))
    assert task.doc_to_text(doc) == (
        f"{METADATA}\n\n{EVADS_INSTRUCTION}\nConsumer Insight question about video 101?")
    assert task.config.generation_kwargs["max_new_tokens"] == 1524
    monkeypatch.setenv("EVADS_PROMPT", "reasoning")
    reasoning = task.doc_to_text(doc)
    assert reasoning.startswith(f"{METADATA}\n\n Question: Consumer Insight question")
    assert "<think>your_thinking</think> <answer>" in reasoning
    monkeypatch.setenv("EVADS_PROMPT", "verbose")
    with pytest.raises(ValueError, match="EVADS_PROMPT"):
        task.doc_to_text(doc)


def test_explicit_video_dir_wins(task_manager, benchmark, monkeypatch, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    for video in ("101", "102"):
        (elsewhere / f"{video}.mp4").write_bytes((benchmark / "videos" / f"{video}.mp4")
                                                 .read_bytes())
    monkeypatch.setenv("EVADS_VIDEO_DIR", str(elsewhere))
    doc = next(iter(_build(task_manager, "evads_rc").test_docs()))
    assert doc["video_path"] == str(elsewhere / "101.mp4")


def test_missing_video_names_question_and_path(task_manager, benchmark):
    (benchmark / "videos" / "102.mp4").unlink()
    message = str(_build_error(task_manager, "evads_ml"))
    assert "102-ML" in message and str(benchmark / "videos" / "102.mp4") in message


def test_videos_two_levels_up_only_beside_an_annotations_folder(task_manager, benchmark,
                                                               monkeypatch):
    """``<root>/videos`` serves ``<root>/annotations/x.parquet``, not ``<root>/other/x``."""
    other = benchmark / "other" / "test.parquet"
    other.parent.mkdir()
    other.write_bytes((benchmark / "annotations" / "test.parquet").read_bytes())
    monkeypatch.setenv("EVADS_ANNOTATIONS", str(other))
    assert "no video directory configured" in str(_build_error(task_manager, "evads_bp"))
    (benchmark / "videos").rename(other.parent / "videos")  # videos/ beside the file itself
    doc = next(iter(_build(task_manager, "evads_bp").test_docs()))
    assert doc["video_path"] == str(other.parent / "videos" / "101.mp4")


@pytest.mark.parametrize("name", ["101.mkv", "101.MP4"])
def test_a_video_suffix_lmms_eval_would_drop_is_refused(task_manager, benchmark, monkeypatch,
                                                        name):
    """lmms-eval's qwen2_5_vl ignores visuals not ending in .mp4/.avi/.mov: fail instead."""
    records = [EvadsRecord(
        question_id=f"odd-{code}", video_id="101", video_file=f"../videos/{name}",
        question="q?", answer="a", task=code, task_inferred=True, split="rl",
        metadata=METADATA) for code in TASK_CODES]
    path = write_schema(records, benchmark / "annotations" / "odd.jsonl", "normalized")
    (benchmark / "videos" / "101.mp4").rename(benchmark / "videos" / name)
    monkeypatch.setenv("EVADS_ANNOTATIONS", str(path))
    message = str(_build_error(task_manager, "evads_cm"))
    assert "odd-CM" in message and str(benchmark / "videos" / name) in message
    assert "unsupported suffix" in message


def test_an_empty_answer_scores_0_without_a_judge_call(task_manager, benchmark):
    task = _build(task_manager, "evads_bp")
    doc = next(iter(task.test_docs()))
    for response in ("", "<think>only thinking, cut off", "<answer> </answer>"):
        values = process_results(doc, [response])
        record = values["judge_errors"]
        assert (record["judge_score"], record["raw"], record["no_answer"]) == (0.0, NO_ANSWER,
                                                                              True)
        assert values["evads_r5"]["score"] == 0.0 and values["evads_g"]["score"] == 0.0
    assert process_results(doc, [doc["answer"]])["judge_errors"]["no_answer"] is False


def test_bad_annotation_file_is_named(task_manager, benchmark, monkeypatch):
    broken = benchmark / "broken.jsonl"
    broken.write_text('{"question": "q?", "answer": "a", "ques_categories": "Unknown task"}\n',
                      encoding="utf-8")
    monkeypatch.setenv("EVADS_ANNOTATIONS", str(broken))
    message = str(_build_error(task_manager, "evads_bp"))
    assert "broken.jsonl" in message and "row 0" in message and "ques_categories" in message


@pytest.mark.parametrize(("response", "judged"), [
    ("<think>the price shows 59.9</think> <answer> It costs 59.9 yuan. </answer>",
     "It costs 59.9 yuan."),
    ("<think>long trace</think><answer>cut off before the closing tag", "cut off before the "
                                                                          "closing tag"),
    ("  A plain answer without tags. ", "A plain answer without tags."),
])
def test_only_the_answer_part_is_judged(response, judged):
    assert judged_text(response) == judged
