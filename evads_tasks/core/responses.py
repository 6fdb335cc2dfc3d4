"""What the judge sees of a model response (shared by evaluation and the RL reward).

Only the text inside ``<answer>`` is judged when the response has one (EVADS.md);
a closing tag may be missing when generation hit its token limit. Without an
``<answer>`` tag the response is judged whole, minus its ``<think>`` block (an
unclosed one runs to the end) and any stray tag, so reasoning is never graded as
the answer. The official protocol uses the authors' own rule instead
(:func:`authors_judged_text`).
"""

from __future__ import annotations

import re

_COMPLETE_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)
_OPEN_ANSWER = re.compile(r"<answer>(.*)$", re.S)
_THINK_BLOCK = re.compile(r"<think>.*?(</think>|$)", re.S)
_ANY_TAG = re.compile(r"</?(think|answer)>")


def answer_part(response: str | None) -> tuple[str | None, bool]:
    """(the text to judge, whether it came from a complete ``<answer>`` block).

    None when nothing is left to judge.
    """
    text = response or ""
    match = _COMPLETE_ANSWER.search(text)
    if match:
        return match.group(1).strip() or None, True
    match = _OPEN_ANSWER.search(text)
    rest = match.group(1) if match else _THINK_BLOCK.sub(" ", text)
    return _ANY_TAG.sub(" ", rest).strip() or None, False


def judged_text(response: str | None) -> str:
    """The part of a response the judge sees: inside ``<answer>`` when present, else ""."""
    return answer_part(response)[0] or ""


def authors_judged_text(prediction: str | None) -> str:
    """What the authors' evaluation script sends its judge: the text between the first
    ``<answer>`` and the next ``</answer>`` when the prediction holds both tags, unstripped;
    else the whole prediction (which the script, like lmms-eval, has already stripped)."""
    text = prediction or ""
    if "<answer>" in text and "</answer>" in text:
        return text.split("<answer>")[1].split("</answer>")[0]
    return text
