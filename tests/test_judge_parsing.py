"""The strict ``Answer: <score>`` parser: what is read as a score, and what is retried."""

from __future__ import annotations

import pytest

from evads_tasks.core.judge import JudgeRequest, UnparseableReply, build_messages, parse_score
from evads_tasks.core.judge.prompts import SECTION_ANSWER, SECTION_TRACE, read_sections
from evads_tasks.core.scoring import LEVEL_MEANINGS

WELL_FORMED = [
    ("Answer: 1", 1.0),
    ("Answer: 1.0", 1.0),
    ("Answer: 0.75", 0.75),
    ("Answer: .5", 0.5),
    ("Answer: 0.25", 0.25),
    ("Answer: 0", 0.0),
    ("answer:0.5", 0.5),
    ("Answer: **0.75**", 0.75),
    ("Answer: 0.5/1", 0.5),
    ("**Answer:** 0.75", 0.75),
    ("Answer: 1.0.", 1.0),
]
MARKDOWN = [
    ("**Answer**: 0.75", 0.75),
    ("__Answer__: 0.25", 0.25),
    ("The reply covers the price.\n**Answer:**\n0.5", 0.5),
    ("Answer:\n0.75", 0.75),
    ("Answer:\n\n**1.0**", 1.0),
    ("**答案**：0.5", 0.5),
    ("**Reference answer**: 1\n**Answer**: 0.25", 0.25),
]
EXTRA_TEXT = [
    ("The answer names the price and the audience.\nAnswer: 0.75\nThanks.", 0.75),
    ("Reasoning: misses the brand (2 of 4 points).\nFinal Answer: 0.5", 0.5),
    ("Model answer: 99 yuan\nReference answer: 1\nAnswer: 0.25", 0.25),
    ("I reply as Answer: <score>.\nAnswer: 1.0", 1.0),
    ("Answer: 1.0\n(repeated) Answer: 1", 1.0),
    ("Answer: 0.75 (accurate but generic)", 0.75),
]
CHINESE = [
    ("Answer：0.5", 0.5),
    ("答案: 1.0", 1.0),
    ("分析：覆盖了卖点。\n答案：0.75", 0.75),
    ("参考答案：2\n答案：0.25", 0.25),
]
UNPARSEABLE = [
    ("", "empty"),
    ("   \n", "empty"),
    (None, "empty"),
    ("The answer is good.", "no Answer line"),
    ("Score: 1.0", "no Answer line"),
    ("Answer: <score>", "placeholder only"),
    ("Answer: 0.5\nAnswer: 0.75", "several different scores"),
    ("Answer: 0.5 or 0.75", "several numbers on the line"),
    ("Answer: 0.5, 1.0", "several numbers on the line"),
    ("Answer: 2", "out of range"),
    ("Answer: 0.6", "not a level"),
    ("Answer: -0.25", "negative"),
    ("Answer: 75%", "percentage"),
    ("答案：1.5", "Chinese, out of range"),
    ("**Answer**: 0.6", "Markdown label, not a level"),
    ("Answer:\nThe model answer is about right, 0.5", "next line is not a score"),
    ("Answer:\n0.5 or 0.75", "next line holds two numbers"),
    ("Answer:\n\n", "label with nothing after it"),
]


@pytest.mark.parametrize(("reply", "score"), WELL_FORMED + MARKDOWN + EXTRA_TEXT + CHINESE)
def test_valid_replies_give_their_level(reply: str, score: float) -> None:
    assert parse_score(reply) == score


@pytest.mark.parametrize(("reply", "why"), UNPARSEABLE)
def test_ambiguous_or_invalid_replies_are_unparseable(reply: str | None, why: str) -> None:
    with pytest.raises(UnparseableReply):
        parse_score(reply)


def test_prompts_carry_every_input_and_the_official_levels() -> None:
    request = JudgeRequest(question="这件衣服适合谁？", metadata="Time 0s: OCR Text: [百搭]",
                           clues="线索：140斤可穿", reference="微胖女性", answer="微胖的姐妹")
    system, user = build_messages(request)
    assert system["role"] == "system" and user["role"] == "user"
    for text in ("这件衣服适合谁？", "Time 0s: OCR Text: [百搭]", "线索：140斤可穿", "微胖女性"):
        assert text in user["content"]
    assert read_sections(user["content"])[SECTION_ANSWER] == "微胖的姐妹"
    for meaning in LEVEL_MEANINGS.values():
        assert meaning in user["content"]
    assert "Answer: <score>" in user["content"]
    trace = build_messages(JudgeRequest(**{**request.__dict__, "rubric": "trace",
                                           "answer": "<think>看到140斤</think>"}))
    assert read_sections(trace[1]["content"])[SECTION_TRACE] == "<think>看到140斤</think>"
    assert "grounding" in trace[1]["content"] and trace != build_messages(request)


def test_unknown_rubric_is_rejected() -> None:
    with pytest.raises(ValueError, match="rubric"):
        JudgeRequest("q", "m", "c", "r", "a", rubric="style")
