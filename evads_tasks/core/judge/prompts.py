"""The judge prompts: the evads protocol's answer and trace rubrics, and the official message.

The evads protocol's rubrics are our own wording of the five levels and meanings of
``evads_tasks.core.scoring.LEVEL_MEANINGS``; they ask for the authors' reply format, a final line
``Answer: <score>``, and lay the inputs out under fixed section headers (``SECTION_*``) so
that tools (and the loopback test server) can read them back. The official protocol's
message is the authors' own ``JUDGE_PROMPT``, which evads does not carry: it is read from the
user's copy of their script and filled in by :func:`official_messages`.
"""

from __future__ import annotations

from ..scoring import LEVEL_MEANINGS, LEVELS
from .api import JudgeRequest

SECTION_QUESTION = "[Question]"
SECTION_METADATA = "[Video OCR/ASR metadata]"
SECTION_CLUES = "[Clues]"
SECTION_REFERENCE = "[Reference answer]"
SECTION_ANSWER = "[Model answer]"
SECTION_TRACE = "[Model reasoning trace]"
SECTIONS = (SECTION_QUESTION, SECTION_METADATA, SECTION_CLUES, SECTION_REFERENCE,
            SECTION_ANSWER, SECTION_TRACE)

EMPTY_FIELD = "(none)"


def _format_level(level: float) -> str:
    return "0" if level == 0 else ("1.0" if level == 1 else f"{level:g}")


def _level_table(meanings: dict[float, str]) -> str:
    return "\n".join(f"- {_format_level(x)}: {meanings[x]}" for x in sorted(LEVELS, reverse=True))


REPLY_FORMAT = (
    "Reply with a short justification, then a final line of exactly the form\n"
    "Answer: <score>\n"
    f"where <score> is one of {', '.join(_format_level(x) for x in LEVELS)}. "
    "Write no other line that starts with 'Answer:'."
)

ANSWER_SYSTEM = (
    "You are an expert evaluator of answers about e-commerce short video advertisements "
    "(Taobao product ads). You grade a model's answer against the reference answer, using "
    "the question, the video's time-aligned OCR/ASR metadata and the evidence clues."
)

ANSWER_RUBRIC = (
    "Grade the model answer on this five-level scale:\n"
    f"{_level_table(LEVEL_MEANINGS)}\n"
    "Judge meaning, not wording: a correct answer may be phrased differently from the "
    "reference. Claims that contradict the metadata or the clues count as hallucinated "
    "evidence.\n" + REPLY_FORMAT
)

TRACE_SYSTEM = (
    "You are an expert evaluator of reasoning about e-commerce short video advertisements "
    "(Taobao product ads). You grade how well a model's reasoning trace is grounded in the "
    "video evidence: the clues and the time-aligned OCR/ASR metadata."
)

TRACE_MEANINGS: dict[float, str] = {
    1.0: LEVEL_MEANINGS[1.0] + " (every step rests on the clues or the metadata and leads "
         "to the reference conclusion)",
    0.75: LEVEL_MEANINGS[0.75] + " (grounded, but cites the evidence only vaguely)",
    0.5: LEVEL_MEANINGS[0.5] + " (uses about half of the relevant clues, or skips facts)",
    0.25: LEVEL_MEANINGS[0.25] + " (cites evidence that is not in the clues or metadata, "
          "or reasons from the right evidence to a wrong conclusion)",
    0.0: LEVEL_MEANINGS[0.0] + " (unrelated to the evidence, or no reasoning)",
}

TRACE_RUBRIC = (
    "Grade the reasoning trace for evidence grounding on this five-level scale:\n"
    f"{_level_table(TRACE_MEANINGS)}\n"
    "The reference answer shows the conclusion the evidence supports.\n" + REPLY_FORMAT
)


def _section(header: str, text: str) -> str:
    return f"{header}\n{text.strip() or EMPTY_FIELD}"


def user_prompt(request: JudgeRequest) -> str:
    """The user message: rubric, then each input under its section header."""
    trace = request.rubric == "trace"
    parts = [
        TRACE_RUBRIC if trace else ANSWER_RUBRIC,
        _section(SECTION_QUESTION, request.question),
        _section(SECTION_METADATA, request.metadata),
        _section(SECTION_CLUES, request.clues),
        _section(SECTION_REFERENCE, request.reference),
        _section(SECTION_TRACE if trace else SECTION_ANSWER, request.answer),
    ]
    return "\n\n".join(parts)


def build_messages(request: JudgeRequest) -> list[dict[str, str]]:
    """OpenAI chat messages for one request (the cache key covers exactly these)."""
    system = TRACE_SYSTEM if request.rubric == "trace" else ANSWER_SYSTEM
    return [{"role": "system", "content": system},
            {"role": "user", "content": user_prompt(request)}]


def read_sections(prompt: str) -> dict[str, str]:
    """Split a user prompt built here back into {section header: text} (rubric text dropped)."""
    found: dict[str, str] = {}
    current: str | None = None
    lines: list[str] = []
    for line in prompt.split("\n"):
        if line in SECTIONS:
            if current is not None:
                found[current] = "\n".join(lines).strip()
            current, lines = line, []
        elif current is not None:
            lines.append(line)
    if current is not None:
        found[current] = "\n".join(lines).strip()
    return found


def official_messages(judge_prompt: str, request: JudgeRequest) -> list[dict[str, str]]:
    """The authors' judge message: one ``user`` message, their ``JUDGE_PROMPT`` (read from
    the user's copy of their script, see :mod:`evads_tasks.core.official_script`) filled in with
    ``str.format`` exactly as their script fills it. No system message."""
    prompt = judge_prompt.format(question=request.question, metadata=request.metadata,
                                 clues=request.clues, reference_answer=request.reference,
                                 model_output=request.answer)
    return [{"role": "user", "content": prompt}]
