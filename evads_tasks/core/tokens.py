"""A tokenizer-free token estimate for judge and generator prompts: one token per CJK
character plus one per four other characters (close for Qwen and GPT tokenizers on mixed
Chinese/English text); an image is ``TOKENS_PER_FRAME``. Used to price a run before any call
(``--dry-run`` of rescore and of the Q&A generator) and where a server reports no usage."""

from __future__ import annotations

import re
from collections.abc import Sequence

# About a token each: CJK punctuation, kana, Han and Hangul. Wider on purpose than
# text_units.CJK_RANGES (Han ideographs only), which counts words, not tokens.
_CJK = re.compile(r"[\u3000-\u9fff\uac00-\ud7af\uf900-\ufaff]")
TOKENS_PER_FRAME = 256
# A judge reply of typical length (a short rationale and the level).
JUDGE_REPLY_TOKENS = 120


def count_tokens(text: str) -> int:
    """One token per CJK character, one per four other characters."""
    cjk = len(_CJK.findall(text))
    return cjk + (len(text) - cjk + 3) // 4


def message_tokens(messages: Sequence[dict]) -> int:
    total = 0
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            total += count_tokens(content) + 4
        else:
            total += sum(count_tokens(p.get("text", "")) if p["type"] == "text"
                         else TOKENS_PER_FRAME for p in content) + 4
    return total
