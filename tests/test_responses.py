"""Only the answer part of a response is judged, in evaluation and in the RL reward alike."""

import pytest

from evads_tasks.core.responses import answer_part


@pytest.mark.parametrize(("response", "expected"), [
    ("<think>price is 59.9</think> <answer> 59.9元 </answer>", ("59.9元", True)),
    ("<answer>first</answer> <answer>second</answer>", ("first", True)),
    ("<think>trace</think><answer>cut off by the limit", ("cut off by the limit", False)),
    ("<think>only reasoning, never answered", (None, False)),
    ("<think>why</think> plain answer after the trace", ("plain answer after the trace", False)),
    ("  A plain answer without tags. ", ("A plain answer without tags.", False)),
    ("<answer>   </answer>", (None, True)),
    ("", (None, False)),
    (None, (None, False)),
])
def test_answer_part(response, expected):
    assert answer_part(response) == expected
