"""Is a text in the language asked for? Decided by writing system, without a model.

A text passes when the script of the requested language makes up at least ``MIN_SHARE`` of
its units: a CJK ideograph, kana or Hangul syllable counts one unit each, a word of an
alphabetic script one unit. Numbers and punctuation do not count, so a Chinese answer with a
Latin brand name and a price (``CottonDay 纯棉T恤 69.9元``) still reads as Chinese.

Limits, said plainly: languages that share a script are not told apart (English from
French, Chinese from Japanese text without kana); a language whose script is not listed
here is not checked (the candidate passes and the check says so).
"""

from __future__ import annotations

import re
from collections import Counter

from evads_tasks.core.text_units import HAN

MIN_SHARE = 0.6
_SCRIPTS = {
    "han": HAN,
    "kana": re.compile(r"[\u3040-\u30ff\u31f0-\u31ff]"),
    "hangul": re.compile(r"[\uac00-\ud7af\u1100-\u11ff]"),
    "thai": re.compile(r"[\u0e00-\u0e7f]"),
    "latin": re.compile(r"[A-Za-z\u00c0-\u024f\u1e00-\u1eff]+"),
    "cyrillic": re.compile(r"[\u0400-\u04ff]+"),
    "arabic": re.compile(r"[\u0600-\u06ff]+"),
    "devanagari": re.compile(r"[\u0900-\u097f]+"),
    "greek": re.compile(r"[\u0370-\u03ff]+"),
}
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
# The scripts a language is written in (Japanese mixes kanji and kana).
LANGUAGE_SCRIPTS: dict[str, tuple[str, ...]] = {
    "zh": ("han",), "ja": ("kana", "han"), "ko": ("hangul",), "th": ("thai",),
    "ru": ("cyrillic",), "uk": ("cyrillic",), "bg": ("cyrillic",), "ar": ("arabic",),
    "fa": ("arabic",), "hi": ("devanagari",), "el": ("greek",),
    **{code: ("latin",) for code in ("en", "fr", "de", "es", "pt", "it", "nl", "pl", "tr",
                                     "vi", "id", "ms", "sv", "da", "no", "fi", "cs", "ro",
                                     "hu", "tl")},
}


def script_units(text: str) -> Counter:
    """Units of ``text`` per script."""
    return Counter({name: len(pattern.findall(text)) for name, pattern in _SCRIPTS.items()})


def word_count(text: str) -> int:
    """Words of ``text`` in any script: one per ideograph, kana or Hangul syllable, one per
    alphabetic word, one per number (for Chinese and English, what ``text_units`` counts)."""
    return sum(script_units(text).values()) + len(_NUMBER.findall(text))


def language_check(text: str, language: str) -> tuple[bool, str]:
    """(passes, why) for ``text`` against the requested ``language`` code."""
    scripts = LANGUAGE_SCRIPTS.get(language.lower().split("-")[0])
    if scripts is None:
        return True, f"not checked: no script known for language {language!r}"
    units = script_units(text)
    total = sum(units.values())
    if total == 0:
        return False, "no words to check"
    share = sum(units[s] for s in scripts) / total
    if language.lower().startswith("ja") and units["kana"] == 0:
        share = 0.0  # Japanese without any kana is Chinese
    if share < MIN_SHARE:
        main = units.most_common(1)[0][0]
        return False, (f"{share:.0%} of the text is in the {'/'.join(scripts)} script of "
                       f"{language!r}; mostly {main}")
    return True, f"{share:.0%} {'/'.join(scripts)}"
