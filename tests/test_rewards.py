"""The MG-GRPO reward table: every judge level, format case, weight and row ratio."""

from __future__ import annotations

import pytest

from evads_rl.rewards import (
    RewardWeights,
    completion_text,
    format_reward_value,
    is_well_formed,
    parse_completion,
    reward_parts,
)

# G(x) = (S + R3 + R5) / 3 from the paper: the values the reward must produce.
G = {1.0: 1.0, 0.75: 0.4167, 0.5: 0.3333, 0.25: 0.0833, 0.0: 0.0}


@pytest.mark.parametrize("answer_level", sorted(G))
@pytest.mark.parametrize("trace_level", sorted(G))
def test_reward_table_every_level_pair(answer_level, trace_level):
    parts = reward_parts(answer_level, trace_level, format_ok=True)
    assert parts.answer == pytest.approx(G[answer_level], abs=1e-4)
    assert parts.trace == pytest.approx(G[trace_level], abs=1e-4)
    assert parts.format == 1.0
    assert parts.total == pytest.approx(0.8 * G[answer_level] + 0.2 * G[trace_level] + 1.0,
                                        abs=1e-4)


def test_best_and_worst_rewards():
    assert reward_parts(1.0, 1.0, True).total == pytest.approx(2.0)
    assert reward_parts(0.0, 0.0, False).total == 0.0


def test_an_unjudged_term_counts_zero():
    parts = reward_parts(None, 0.75, format_ok=False)
    assert (parts.answer, parts.format) == (0.0, 0.0)
    assert parts.total == pytest.approx(0.2 * G[0.75], abs=1e-4)


def test_an_off_rubric_judge_score_is_rejected():
    with pytest.raises(ValueError, match="one of"):
        reward_parts(0.6, None, True)


@pytest.mark.parametrize("weights", [RewardWeights(1.0, 0.0, 0.0), RewardWeights(0.5, 0.5, 2.0),
                                     RewardWeights(0.0, 0.0, 1.0)])
def test_weights_scale_each_term(weights):
    parts = reward_parts(0.75, 0.5, True, weights)
    assert parts.total == pytest.approx(weights.answer * G[0.75] + weights.trace * G[0.5]
                                        + weights.format, abs=1e-4)


def test_row_ratios_scale_accuracy_and_format_terms_separately():
    parts = reward_parts(1.0, 0.5, True, accuracy_ratio=0.5, format_ratio=0.0)
    assert parts.answer == pytest.approx(0.5)
    assert parts.trace == pytest.approx(0.5 * G[0.5], abs=1e-4)
    assert parts.format == 0.0
    assert parts.total == pytest.approx(0.8 * 0.5 + 0.2 * 0.5 * G[0.5], abs=1e-4)


def test_weights_from_mapping_defaults_and_rejects_unknown_keys():
    assert RewardWeights.from_mapping(None).as_list() == [0.8, 0.2, 1.0]
    assert RewardWeights.from_mapping({"format": 0.5}).as_list() == [0.8, 0.2, 0.5]
    with pytest.raises(ValueError, match="accuracy"):
        RewardWeights.from_mapping({"accuracy": 1.0})


@pytest.mark.parametrize("text, ok", [
    ("<think>price first</think> <answer>29.9 yuan</answer>", True),
    ("<think>a</think><answer>b</answer>", True),
    ("\n <think>多行\n推理</think>\n<answer>答案</answer>\n", True),
    ("<answer>b</answer> <think>a</think>", False),  # wrong order
    ("<think>a</think> <answer>b</answer> <answer>c</answer>", False),  # two answers
    ("<think>a</think> <think>b</think> <answer>c</answer>", False),  # two thinks
    ("<think> </think> <answer>b</answer>", False),  # empty think
    ("<think>a</think> <answer>  </answer>", False),  # empty answer
    ("<think>a</think> <answer>b", False),  # truncated
    ("<think>a</think> b", False),  # no answer tag
    ("<answer>b</answer>", False),  # no think
    ("preamble <think>a</think> <answer>b</answer>", False),  # text outside the tags
    ("<think>a</think> <answer>b</answer> trailing", False),
    ("", False),
])
def test_format_check(text, ok):
    assert is_well_formed(text) is ok
    assert format_reward_value(text) == (1.0 if ok else 0.0)


def test_completion_forms_str_and_chat_messages_read_the_same():
    text = "<think>a</think> <answer>b</answer>"
    as_messages = [{"role": "assistant", "content": text}]
    as_parts = [{"role": "assistant", "content": [{"type": "text", "text": "<think>a</think> "},
                                                  {"type": "text", "text": "<answer>b</answer>"}]}]
    assert completion_text(as_messages) == completion_text(as_parts) == text
    assert parse_completion(as_parts) == parse_completion(text)
    assert completion_text(None) == ""


@pytest.mark.parametrize("text, think, answer, tagged", [
    ("<think>t</think> <answer>a</answer>", "t", "a", True),
    ("<think>t</think> untagged answer", "t", "untagged answer", False),  # judged whole
    ("just an answer", None, "just an answer", False),
    ("<think>never closed", None, None, False),
    ("<think>t</think> <answer></answer>", "t", None, True),
    ("", None, None, False),
])
def test_what_is_judged(text, think, answer, tagged):
    parsed = parse_completion(text)
    assert (parsed.think, parsed.answer, parsed.answer_tagged) == (think, answer, tagged)
