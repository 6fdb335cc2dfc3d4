"""Chinese text around speech recognition: Simplified characters, spoken numbers, CER.

Whisper writes Mandarin in Traditional characters about as often as in Simplified ones and
writes spoken numbers as digits (九十九元 -> 99元); E-VAds metadata is Simplified with
numbers as spoken or as digits. :func:`to_simplified` fixes the script of every transcript;
:func:`character_error_rate` compares a transcript with a reference after reading digits
aloud (99 -> 九十九), so a right number written the other way is not an error.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from evads_tasks.core.text_units import CJK_RANGES, HAN

_DIGITS = "零一二三四五六七八九"
_SMALL_UNITS = ("", "十", "百", "千")
_BIG_UNITS = ("", "万", "亿", "万亿")
_NUMBER = re.compile(r"(\d+(?:,\d{3})*)(?:\.(\d+))?(%?)")
_KEPT = re.compile(rf"[{CJK_RANGES}a-z]")


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """``text`` with Traditional Chinese characters turned Simplified (OpenCC t2s, phrase
    aware: 頭髮 -> 头发 but 乾隆 stays); other scripts pass unchanged."""
    return _t2s().convert(text) if text else text


def count_cjk(text: str) -> int:
    """CJK characters in ``text``: the speech units of a Chinese line said as written."""
    return len(HAN.findall(text))


def _below_10000(n: int) -> str:
    out, zero = "", False
    for power in range(3, -1, -1):
        digit = n // 10 ** power % 10
        if digit:
            if zero and out:
                out += "零"
            out += _DIGITS[digit] + _SMALL_UNITS[power]
            zero = False
        else:
            zero = True
    return out


def read_integer(n: int) -> str:
    """How an integer is said in Mandarin: 12 -> 十二, 99 -> 九十九, 1005 -> 一千零五."""
    if n == 0:
        return "零"
    groups, out, gap = [], "", False
    while n:
        groups.append(n % 10000)
        n //= 10000
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if not group:
            gap = True
            continue
        if out and (gap or group < 1000):
            out += "零"
        out += _below_10000(group) + _BIG_UNITS[index]
        gap = False
    return out[1:] if out.startswith("一十") else out


def read_numbers(text: str) -> str:
    """Digits as spoken: 99元 -> 九十九元, 5.08 -> 五点零八, 50% -> 百分之五十."""
    def spoken(match: re.Match) -> str:
        whole, fraction, percent = match.groups()
        said = read_integer(int(whole.replace(",", "")))
        if fraction:
            said += "点" + "".join(_DIGITS[int(d)] for d in fraction)
        return "百分之" + said if percent else said

    return _NUMBER.sub(spoken, text)


def normalize_for_cer(text: str) -> str:
    """The characters CER compares: Simplified, numbers read aloud, 两 as 二 (both say 2),
    lower-case, only CJK characters and Latin letters (no punctuation or spaces)."""
    text = read_numbers(unicodedata.normalize("NFKC", to_simplified(text)))
    return "".join(_KEPT.findall(text.lower().replace("两", "二")))


def _edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        diagonal, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (x != y))
    return row[-1]


def character_error_rate(reference: str, hypothesis: str) -> float:
    """Edits (substitutions, insertions, deletions) per reference character, after
    :func:`normalize_for_cer` of both sides."""
    ref, hyp = normalize_for_cer(reference), normalize_for_cer(hypothesis)
    if not ref:
        return float(bool(hyp))
    return _edit_distance(ref, hyp) / len(ref)
