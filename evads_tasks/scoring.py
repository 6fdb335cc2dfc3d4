"""The judge's five-level score and the metrics derived from it (pure functions).

One judge score x in {0, 0.25, 0.5, 0.75, 1} yields every reported metric:
R5 = x; R3 relaxes to three levels (0.75 -> 0.5, 0.25 -> 0); R2 is strict
(1 only for 1.0); the multi-grained score G = (R2 + R3 + R5) / 3 is the
MG-GRPO reward term.
"""

from __future__ import annotations

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


def r5(x: float) -> float:
    return check_level(x)


def r3(x: float) -> float:
    value = check_level(x)
    return {0.75: 0.5, 0.25: 0.0}.get(value, value)


def r2(x: float) -> float:
    return 1.0 if check_level(x) == 1.0 else 0.0


def mg_score(x: float) -> float:
    """G(x) = (S(x) + R3(x) + R5(x)) / 3 with S the strict score."""
    return (r2(x) + r3(x) + r5(x)) / 3.0
