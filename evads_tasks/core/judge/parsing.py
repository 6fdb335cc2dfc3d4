"""Strict reading of the judge's ``Answer: <score>`` line (a pure function).

A reply is read as a score only when it is unambiguous: at least one ``Answer:`` line
(also ``Answer：`` with a Chinese colon and ``答案:``/``答案：``) carrying a number, every such
number one of the five levels, and all of them the same level. Markdown emphasis around the
label (``**Answer**: 0.75``, ``**Answer:** 0.75``) and the score alone on the line after a
bare ``Answer:`` are accepted; text around the line is fine. Anything else (no Answer line,
an empty reply, a number out of range such as ``Answer: 2`` or ``Answer: 0.6``, several
different scores, or a second number on the Answer line such as ``Answer: 0.5 or 0.75``) is
unparseable and raises ``UnparseableReply``: the client asks once more and never reads it
as a score. A ``/1`` or ``out of 1`` denominator after the score is allowed. Labels that
merely end in "answer" (``Model answer:``, ``Reference answer:``, ``参考答案:``) are not
Answer lines. The number is written in ASCII or full-width digits (``Answer: ０.５``) and any
whitespace may follow the colon (a no-break or ideographic space too); other scripts' digits
(Arabic-Indic, Devanagari) are not read as a score. This is the evads protocol's rule; the
official protocol reads replies with the authors' rule (:func:`parse_authors_score`).

:func:`has_verdict_line` finds such a line in a MODEL's answer: under the official protocol
an answer ending ``Answer: 1.0`` can pass for the judge's verdict (prompt injection), so the
answers carrying one are counted beside every mean.
"""

from __future__ import annotations

import math
import re

from ..scoring import LEVELS, check_level

# The label may carry Markdown emphasis around it or its colon: **Answer**: / **Answer:**.
_LABEL = re.compile(r"(?i)(?<![A-Za-z])answer[\s*_]*[:：]|答案[\s*_]*[:：]")
# Words that make "...answer:" a label of the inputs rather than the verdict.
_NOT_VERDICT = re.compile(
    r"(?i)(?:reference|model|candidate|student|standard|correct|ground[- ]truth|expected)"
    r"[\s_*-]*$|(?:参考|标准|模型|正确)$"
)
# What may come between the label and the score: any whitespace, emphasis, quotes, brackets.
_DECORATION = re.compile(r"^[\s*_`\"'\[(（【]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")  # ASCII digits only
_FULL_WIDTH = str.maketrans("０１２３４５６７８９．＋－", "0123456789.+-")
_DENOMINATOR = re.compile(r"^\s*(?:/\s*1(?:\.0+)?|out of 1(?:\.0+)?)(?![\d.])", re.I)


class UnparseableReply(ValueError):
    """The judge's reply does not hold exactly one valid score; the message says why."""


def _score_after(line_rest: str) -> float | str | None:
    """The number opening ``line_rest`` (after decoration), or an error text, or None."""
    rest = _DECORATION.sub("", line_rest.translate(_FULL_WIDTH))
    match = _NUMBER.match(rest)
    if match is None:
        return None
    tail = rest[match.end():]
    if tail.startswith("%"):
        return f"a percentage is not a level: {match.group()}%"
    value = float(match.group())
    tail = _DENOMINATOR.sub("", tail, count=1)
    if _NUMBER.search(tail):
        return f"more than one number on the Answer line: {line_rest.strip()!r}"
    try:
        return check_level(value) + 0.0  # + 0.0: "-0" reads as 0.0, not -0.0
    except ValueError:
        return f"score {match.group()} is not one of the levels {LEVELS}"


def _line_at(text: str, start: int) -> tuple[str, int]:
    """The rest of the line from ``start`` and where the next line begins (-1: none)."""
    end = text.find("\n", start)
    return (text[start:], -1) if end < 0 else (text[start:end], end + 1)


def _label_value(reply: str, start: int) -> str:
    """What follows an Answer label: the rest of its line, or, when that holds nothing but
    decoration, the next non-blank line (``Answer:`` with the score below it)."""
    rest, after = _line_at(reply, start)
    while not _DECORATION.sub("", rest) and after >= 0:
        rest, after = _line_at(reply, after)
    return rest


def parse_score(reply: str | None) -> float:
    """The one level in the reply's ``Answer:`` line(s); ``UnparseableReply`` otherwise."""
    if reply is None or not reply.strip():
        raise UnparseableReply("empty reply")
    scores: list[float] = []
    for label in _LABEL.finditer(reply):
        line_start = reply.rfind("\n", 0, label.start()) + 1
        if _NOT_VERDICT.search(reply[line_start:label.start()]):
            continue
        found = _score_after(_label_value(reply, label.end()))
        if isinstance(found, str):
            raise UnparseableReply(found)
        if found is not None:
            scores.append(found)
    if not scores:
        raise UnparseableReply("no 'Answer: <score>' line with a number")
    if len(set(scores)) > 1:
        raise UnparseableReply(f"several different Answer scores: {scores}")
    return scores[0]


def has_verdict_line(text: str | None) -> bool:
    """Whether ``text`` holds a judge-format line: an Answer label (any of the labels above,
    ``Model answer:`` too) followed by one of the five levels."""
    return any(isinstance(_score_after(_label_value(text, label.end())), float)
               for label in _LABEL.finditer(text or ""))


AUTHORS_LABEL = "Answer:"


def parse_authors_score(reply: str | None) -> float:
    """The authors' rule (official protocol): the text after the LAST ``Answer:`` up to the
    end of its line, stripped, read by Python's ``float``. Any number it reads is the score
    (``0.6`` or ``2`` too, as in their script); with no ``Answer:`` the reply's first line is
    read. What ``float`` refuses is a failed try (``UnparseableReply``), and so, unlike their
    script, are ``nan`` and ``inf``, which would otherwise leave or poison their means.
    """
    if reply is None:
        raise UnparseableReply("empty reply")
    text = reply.split(AUTHORS_LABEL)[-1].split("\n")[0].strip()
    try:
        value = float(text)
    except ValueError:
        raise UnparseableReply(f"float() cannot read {text[:80]!r} after the last "
                               f"{AUTHORS_LABEL!r}") from None
    if not math.isfinite(value):
        raise UnparseableReply(f"{text!r} is not a finite number")
    return value + 0.0  # "-0" reads as 0.0
