"""The offline similarity judge: a fallback that maps similarity to the five levels, and says so."""

from __future__ import annotations

import pandas as pd
import pytest
from paths import RL_PARQUET, needs_rl_parquet

from evads_tasks.core.judge import NO_ANSWER, JudgeRequest, SimilarityJudge
from evads_tasks.core.judge.similarity import NAME, char_f1, similarity_level
from evads_tasks.core.text_units import text_units

FALLBACK = "similarity (offline fallback, not the paper's judge)"
REFERENCE = "开头以突发降温直击缺衣痛点，强调百搭显瘦与微胖包容性，建立一衣多穿的高性价比心智。"


@pytest.fixture(scope="module")
def judge() -> SimilarityJudge:
    return SimilarityJudge(progress=False)


def ask(reference: str, answer: str, clues: str = "", rubric: str = "answer") -> JudgeRequest:
    return JudgeRequest(question="视频如何说服观众？", metadata="Duration: 26s", clues=clues,
                        reference=reference, answer=answer, rubric=rubric)


def test_char_units_and_f1_work_for_chinese_and_latin() -> None:
    assert text_units("可以穿到140斤, Size XL!") == ["可", "以", "穿", "到", "140", "斤", "Size",
                                                  "XL"]
    assert char_f1("Size XL", "size xl") == 1.0
    assert char_f1("微胖姐妹", "微胖姐妹") == 1.0
    assert char_f1("微胖姐妹", "口红色号") == 0.0
    assert char_f1("微胖", "微胖姐妹") == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert [similarity_level(s) for s in (1.0, 0.8, 0.6, 0.4, 0.1)] == [1.0, 0.75, 0.5, 0.25, 0]


def test_identical_answer_is_perfect_and_unrelated_is_zero(judge: SimilarityJudge) -> None:
    same = judge.judge(ask(REFERENCE, REFERENCE))
    unrelated = judge.judge(ask(REFERENCE, "This phone has a 120 Hz screen and ships today."))
    assert (same.score, unrelated.score) == (1.0, 0.0)
    assert judge.name == NAME == FALLBACK
    for result in (same, unrelated):
        assert result.judge == FALLBACK and result.error is None and not result.cached
        assert result.raw.startswith(FALLBACK)
    empty = judge.judge(ask(REFERENCE, "  "))
    assert (empty.score, empty.raw) == (0.0, NO_ANSWER)  # the rule every judge shares


def test_partial_answers_score_between(judge: SimilarityJudge) -> None:
    half = judge.judge(ask(REFERENCE, REFERENCE[: len(REFERENCE) // 2])).score
    assert 0.0 < half < 1.0


def test_trace_rubric_compares_the_trace_with_the_clues(judge: SimilarityJudge) -> None:
    clues = "前3秒利用降温缺衣的痛点留住用户；中期用140斤可穿的文字锚点解决身材焦虑。"
    grounded = judge.judge(ask(REFERENCE, f"<think>{clues}</think>", clues, "trace"))
    ungrounded = judge.judge(ask(REFERENCE, "<think>The blender is loud.</think>", clues,
                                 "trace"))
    assert grounded.score == 1.0 and ungrounded.score == 0.0


def test_judge_many_keeps_order(judge: SimilarityJudge) -> None:
    items = [ask(REFERENCE, REFERENCE), ask(REFERENCE, "Unrelated English text."),
             ask("红色连衣裙", "红色连衣裙")]
    assert [r.score for r in judge.judge_many(items)] == [1.0, 0.0, 1.0]


@needs_rl_parquet
def test_on_rl_references_own_beats_other(judge: SimilarityJudge) -> None:
    references = [row["answer"] for row in pd.read_parquet(RL_PARQUET)["reward_model"][:60]]
    own = judge.judge_many([ask(r, r) for r in references])
    other = judge.judge_many([ask(r, references[(i + 7) % 60]) for i, r in
                              enumerate(references)])
    assert all(r.score == 1.0 for r in own)
    assert sum(r.score == 0.0 for r in other) >= 0.8 * 60
