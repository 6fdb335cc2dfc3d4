"""The task classifier against 160 hand-labelled RL questions, and on wording of its own."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
from paths import RL_PARQUET

from evads_tasks.core.annotations import TASK_CODES, assign_tasks, infer_task, load_annotations

FIXTURE = Path(__file__).parent / "fixtures" / "rl_task_labels.jsonl"


@pytest.fixture(scope="module")
def labelled() -> list[dict]:
    return [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]


def by_video(rows: list[dict]) -> dict[str, list[dict]]:
    groups = defaultdict(list)
    for row in rows:
        groups[row["video"]].append(row)
    return groups


def test_fixture_has_one_question_per_task_per_video(labelled):
    groups = by_video(labelled)
    assert len(labelled) >= 150
    assert len({row["question_id"] for row in labelled}) == len(labelled)
    for video, rows in groups.items():
        assert sorted(row["task"] for row in rows) == sorted(TASK_CODES), video


def test_fixture_questions_are_the_rl_questions(labelled):
    if not RL_PARQUET.is_file():
        pytest.skip(f"{RL_PARQUET} not present")
    questions = {r.question_id: (r.video_file, r.question) for r in load_annotations(RL_PARQUET)}
    for row in labelled:
        assert questions[row["question_id"]] == (row["video"], row["question"])


def test_per_video_assignment_agrees_with_hand_labels(labelled):
    right = total = 0
    for rows in by_video(labelled).values():
        predicted = assign_tasks([row["question"] for row in rows])
        right += sum(p == row["task"] for p, row in zip(predicted, rows, strict=True))
        total += len(rows)
    share = right / total
    print(f"per-video assignment agreement: {right}/{total} = {share:.1%}")
    assert share >= 0.95


def test_single_question_agreement_with_hand_labels(labelled):
    right = sum(infer_task(row["question"]) == row["task"] for row in labelled)
    share = right / len(labelled)
    print(f"single-question agreement: {right}/{len(labelled)} = {share:.1%}")
    assert share >= 0.95


@pytest.mark.parametrize("question, task", [
    # Wording written for this test, not taken from the fixture.
    ("视频宣称“三天瘦十斤”是否属于违规虚假宣传？", "RC"),
    ("视频中“全网最低价”的说法属于合规修辞还是违规承诺？", "RC"),
    ("该视频锁定哪类核心受众，试图缓解其何种焦虑？", "CI"),
    ("当旁白提到“一秒速干”时，画面中毛巾是什么颜色？", "CM"),
    ("字幕显示“限时五折”的瞬间，主播手里拿着什么？", "CM"),
    ("视频如何借助实验对比建立信任并促成下单？", "ML"),
    ("视频中这款保温杯的容量和品牌分别是什么？", "BP"),
    # Words another task also uses: the phrase shape decides.
    ("视频如何利用风险逆转与价格锚点打消下单顾虑？", "ML"),
    ("视频如何借合规背书构建转化闭环？", "ML"),
    ("包装上标注的适用人群和保质期是什么？", "BP"),
    ("视频字幕显示的每片含量是多少？", "BP"),
])
def test_infer_task_reads_the_phrase_shape(question, task):
    assert infer_task(question) == task


def test_assign_tasks_gives_each_task_once_for_five_questions():
    questions = [
        "当口播提到“一键除垢”时，画面中的水是什么颜色？",
        "该广告想吸引哪类人群，满足什么需求？",
        "视频声称“永不褪色”是否合规？",
        "视频如何通过前后对比构建说服逻辑？",
        # Opens with a moment, so alone it reads as CM; the video's real CM question is
        # the first one, which leaves BP for this concrete-fact question.
        "产品加热时，壶盖处于什么状态？",
    ]
    assert infer_task(questions[-1]) == "CM"
    assert assign_tasks(questions) == ["CM", "CI", "RC", "ML", "BP"]


def test_assign_tasks_falls_back_to_single_questions_when_not_five():
    questions = ["视频声称“永不褪色”是否合规？", "视频中出现的价格是多少？"]
    assert assign_tasks(questions) == ["RC", "BP"]
