"""Counting "words" in mixed Chinese/Latin text: the unit of Aden, Oden and answer overlap.

For Chinese a word behaves like a character, so one unit is: one CJK ideograph, one Latin
word (letters, inner apostrophes allowed) or one number (``140``, ``5.08``, ``1,299``).
Punctuation, emoji and whitespace count nothing. On the E-VAds training transcripts this
reproduces the paper's speech density (about 5.07 units/s against the published 5.08).
"""

from __future__ import annotations

import re

CJK_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
_LATIN = "A-Za-z\u00c0-\u024f"
# One Han (CJK ideograph) character: the unit Chinese text is counted in.
HAN = re.compile(rf"[{CJK_RANGES}]")
UNIT = re.compile(rf"[{CJK_RANGES}]|[{_LATIN}]+(?:['\u2019][{_LATIN}]+)*|\d+(?:[.,:]\d+)*")


def text_units(text: str | None) -> list[str]:
    """The units of ``text`` in order: CJK characters, Latin words and numbers."""
    return UNIT.findall(text or "")


def count_units(text: str | None) -> int:
    """CJK characters plus Latin words plus numbers in ``text``."""
    return len(text_units(text))
