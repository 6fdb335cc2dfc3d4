"""The judge's five-level score and the metrics derived from it (pure functions).

One judge score x in {0, 0.25, 0.5, 0.75, 1} yields every reported metric:
R5 = x; R3 relaxes to three levels (0.75 -> 0.5, 0.25 -> 0); R2 is strict
(1 only for 1.0); the multi-grained score G = (R2 + R3 + R5) / 3 is the
MG-GRPO reward term.

Under the official protocol the judge's reply is read with the authors' rule, which keeps
any number (``0.6``, ``2``): ``strict=False`` applies the same arithmetic to any finite
number, exactly as their script computes R5/R3/R2 (R3 maps only 0.75 and 0.25; R2 is 1 only
for 1.0). ``strict=True`` (the default) refuses a score off the five levels.
"""

from __future__ import annotations

import math

LEVELS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
LEVEL_MEANINGS: dict[float, str] = {
    1.0: "perfect: accurate, covers the key points, consistent with the evidence",
    0.75: "accurate but generic: right core, lacks depth or commercial logic",
    0.5: "partially correct: about half the key points, or missing facts",
    0.25: "logical break: hallucinated evidence, or right evidence and wrong conclusion",
    0.0: "incorrect: contradicts the facts or does not answer",
}


def check_level(x: float) -> float:
    """``x`` as a float when it is one of the five levels; ValueError otherwise."""
    value = float(x)
    if value not in LEVELS:
        raise ValueError(f"judge score must be one of {LEVELS}, got {x!r}")
    return value


def _checked(x: float, strict: bool) -> float:
    """A level (strict), or any finite number (the authors' parse rule keeps any)."""
    if strict:
        return check_level(x)
    value = float(x)
    if not math.isfinite(value):
        raise ValueError(f"judge score must be a finite number, got {x!r}")
    return value


def r5(x: float, *, strict: bool = True) -> float:
    return _checked(x, strict)


def r3(x: float, *, strict: bool = True) -> float:
    value = _checked(x, strict)
    return {0.75: 0.5, 0.25: 0.0}.get(value, value)


def r2(x: float, *, strict: bool = True) -> float:
    return 1.0 if _checked(x, strict) == 1.0 else 0.0


def mg_score(x: float, *, strict: bool = True) -> float:
    """G(x) = (S(x) + R3(x) + R5(x)) / 3 with S the strict score."""
    return (r2(x, strict=strict) + r3(x, strict=strict) + r5(x, strict=strict)) / 3.0
