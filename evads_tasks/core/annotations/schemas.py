"""The three published annotation schemas (test, RL, SFT) and our normalized one.

``parse_*`` turn one raw row into an :class:`EvadsRecord` (raising
:class:`AnnotationError` naming the field); ``to_*_row`` write a record back
in that schema, so every schema round-trips.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from ..responses import answer_part
from .categories import chinese_category
from .errors import AnnotationError
from .events import Event, Metadata, parse_metadata, render_metadata
from .record import EvadsRecord, video_file_name
from .task_labels import task_code

RL_INSTRUCTION = (
    "You are permitted to gather any relevant clues, think step by step, to answer this "
    "question. Output your thought process (no length limit) and the final answer (using "
    "approximately 50 words; longer answers will be truncated) in the following format\n"
    "<think>your_thinking</think> <answer>your_answer_within_50_words</answer>"
)
_QUESTION = re.compile(r"Question:\s*(.+)")
# A question line; the last one wins, so that on-screen text quoting "Question:" inside the
# metadata is never taken for it.
_QUESTION_LINE = re.compile(r"(?m)^[ \t]*Question:\s*(.+)")
VIDEO_MARKER = "<video>"

TEST_COLUMNS = ("question", "answer", "ques_categories", "goods_category", "asr_input",
                "video_id", "ques_id", "evidence", "asr_ocr_meta")
TRAIN_COLUMNS = ("data_source", "videos", "prompt", "ability", "reward_model", "extra_info")
# The published SFT split: the whole <think>..</think>\n<answer>..</answer> target in a
# top-level ``answer`` column, no ``reward_model`` (so no clues and no separate reference).
SFT_COLUMNS = ("data_source", "videos", "prompt", "ability", "answer", "extra_info")
NORMALIZED_COLUMNS = ("question_id", "video_id", "video_file", "question", "answer", "task",
                      "task_inferred", "split")
# The columns each schema cannot do without, in the order they are tried.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "normalized": NORMALIZED_COLUMNS,
    "train": ("prompt", "reward_model", "extra_info"),
    "sft": ("prompt", "answer", "extra_info"),
    "test": ("question", "answer", "ques_categories", "video_id", "ques_id"),
}
_SCHEMA_NAMES = {"normalized": "a normalized row (evads JSONL)",
                 "train": "an RL row (verl-style)", "sft": "an SFT row (published split)",
                 "test": "a test row (flat columns)"}


def detect_schema(columns: set[str]) -> str:
    """Name the schema a set of columns belongs to: ``normalized``, ``train`` (RL rows, and
    SFT rows written with a ``reward_model``), ``sft`` (the published SFT split) or
    ``test``; AnnotationError naming what each schema still misses, closest first."""
    if set(NORMALIZED_COLUMNS) <= columns:
        return "normalized"
    if {"reward_model", "prompt"} <= columns:
        return "train"
    if {"prompt", "answer"} <= columns:
        return "sft"
    if {"question", "answer"} <= columns:
        return "test"
    missing = {name: [c for c in need if c not in columns]
               for name, need in REQUIRED_COLUMNS.items()}
    closest = sorted(missing, key=lambda name: len(missing[name]) / len(REQUIRED_COLUMNS[name]))
    raise AnnotationError(
        f"columns {sorted(columns)} match no E-VAds schema: "
        + "; ".join(f"{_SCHEMA_NAMES[name]} also needs {', '.join(missing[name])}"
                    for name in closest))


def _need(row: Mapping, name: str, kind: type | tuple[type, ...] = str, *, optional=False):
    if name not in row or row[name] is None:
        if optional:
            return None
        raise AnnotationError("missing column" if name not in row else
                              "null value (the column is there, this row has none)", field=name)
    value = row[name]
    if not isinstance(value, kind):
        raise AnnotationError(
            f"expected {getattr(kind, '__name__', kind)}, got {type(value).__name__}", field=name)
    return value


def _metadata(text: str, field: str) -> Metadata:
    try:
        return parse_metadata(text)
    except ValueError as exc:
        raise AnnotationError(str(exc), field=field) from None


# ---- test split (flat columns) -------------------------------------------------

def parse_test_row(row: Mapping) -> EvadsRecord:
    label = row.get("ques_categories")
    if label is None:
        raise AnnotationError(("missing column" if "ques_categories" not in row else "null value")
                              + " (the task label)", field="ques_categories")
    try:
        task = task_code(label)
    except KeyError as exc:
        raise AnnotationError(exc.args[0], field="ques_categories") from None
    video_id = str(_need(row, "video_id", (str, int)))
    # The model reads asr_input, the judge asr_ocr_meta (each stands in for the other when
    # a file lacks it); model_text stays empty when the two are the same text.
    model_text = _need(row, "asr_input", optional=True) or ""
    meta_raw = _need(row, "asr_ocr_meta", optional=True) or ""
    meta = _metadata(meta_raw or model_text, "asr_ocr_meta" if meta_raw else "asr_input")
    evidence = row.get("evidence") or ""
    if not isinstance(evidence, str):
        evidence = json.dumps(evidence, ensure_ascii=False)
    return EvadsRecord(
        question_id=str(_need(row, "ques_id", (str, int))),
        video_id=video_id,
        video_file=f"{video_id}.mp4",
        question=_need(row, "question"),
        answer=_need(row, "answer"),
        task=task,
        task_inferred=False,
        split="test",
        clues=evidence,
        metadata=meta_raw or model_text,
        events=meta.events,
        category=_need(row, "goods_category", optional=True) or meta.category,
        duration=meta.duration,
        model_text=model_text if meta_raw and model_text != meta_raw else "",
    )


def authors_metadata(record: EvadsRecord) -> str:
    """The record's metadata as the authors' files hold it (``asr_ocr_meta``, ``meta_info``):
    as given, else rendered from the events with the Chinese category name."""
    return record.metadata or render_metadata(chinese_category(record.category),
                                              record.duration, record.events)


def to_test_row(record: EvadsRecord) -> dict:
    meta = authors_metadata(record)
    return {
        "question": record.question,
        "answer": record.answer,
        "ques_categories": record.task,
        "goods_category": chinese_category(record.category),
        "asr_input": record.model_text or meta,
        "video_id": record.video_id,
        "ques_id": record.question_id,
        "evidence": record.clues,
        "asr_ocr_meta": meta,
    }


# ---- RL and SFT splits (verl-style rows) ----------------------------------------

def train_question(row: Mapping) -> str:
    """The question inside an RL/SFT prompt (needed before the task can be inferred)."""
    prompt = _need(row, "prompt", (list, tuple))
    if not prompt or not isinstance(prompt[-1], Mapping) or "content" not in prompt[-1]:
        raise AnnotationError("expected a list of chat messages with 'content'", field="prompt")
    question_match = _question_match(prompt[-1]["content"])
    if not question_match:
        raise AnnotationError("no 'Question:' line in the prompt text", field="prompt")
    return question_match.group(1).strip()


def _question_match(content: str) -> re.Match | None:
    lines = list(_QUESTION_LINE.finditer(content))
    return lines[-1] if lines else _QUESTION.search(content)


def prompt_metadata(content: str) -> str:
    """The text of an RL/SFT prompt before its question, without the ``<video>`` marker:
    the SFT split's full time-aligned metadata (the RL split's voiceover)."""
    match = _question_match(content)
    head = content[:match.start()] if match else content
    return head.replace(VIDEO_MARKER, "", 1).strip()


def _video_path(row: Mapping, extra: Mapping) -> str:
    video_path = extra.get("video_path") or _need(row, "videos", (str, list, tuple))
    if isinstance(video_path, (list, tuple)):
        if not video_path:
            raise AnnotationError("empty list of videos", field="videos")
        video_path = video_path[0]
    if not isinstance(video_path, str) or not video_path.strip():
        raise AnnotationError(f"expected a video path, got {video_path!r}", field="videos")
    return video_path


def parse_sft_row(row: Mapping, task: str) -> EvadsRecord:
    """A row of the published SFT split, whose task was inferred.

    Its ``answer`` column holds the whole target ``<think>..</think>\n<answer>..</answer>``:
    the reasoning target is all of it, the reference answer its ``<answer>`` part. The
    metadata is the prompt's own (category, duration, time-aligned events); there are no
    clues, so the judge is shown none (never invented ones).
    """
    question = train_question(row)
    content = row["prompt"][-1]["content"]
    target = _need(row, "answer")
    extra = _need(row, "extra_info", Mapping)
    if "id" not in extra:
        raise AnnotationError("missing question id", field="extra_info.id")
    video_path = _video_path(row, extra)
    meta_text = prompt_metadata(content)
    meta = _metadata(meta_text, "prompt")
    return EvadsRecord(
        question_id=str(extra["id"]),
        video_id=video_file_name(video_path).rsplit(".", 1)[0],
        video_file=video_path,
        question=question,
        answer=answer_part(target)[0] or "",
        task=task,
        task_inferred=True,
        split="sft",
        clues="",
        metadata=meta_text,
        events=meta.events,
        category=meta.category,
        duration=meta.duration,
        reasoning_target=target,
        extra={"data_source": row.get("data_source", "EVAdsBench")},
    )


def parse_train_row(row: Mapping, task: str) -> EvadsRecord:
    """An RL row whose task was inferred (also an SFT row written with a ``reward_model`` by
    evads before it wrote the published SFT form: SFT when the target has a ``<think>``)."""
    question = train_question(row)
    content = row["prompt"][-1]["content"]
    reward = _need(row, "reward_model", Mapping)
    answer = reward.get("answer")
    if not isinstance(answer, str):
        raise AnnotationError("missing or non-text answer", field="reward_model.answer")
    verifier = _verifier(reward.get("verifier"))
    extra = _need(row, "extra_info", Mapping)
    video_path = _video_path(row, extra)
    meta_text = verifier.get("meta_info") or ""
    meta = _metadata(meta_text or content, "reward_model.verifier.meta_info")
    is_sft = "<think>" in answer
    if "id" not in extra:
        raise AnnotationError("missing question id", field="extra_info.id")
    return EvadsRecord(
        question_id=str(extra["id"]),
        video_id=video_file_name(video_path).rsplit(".", 1)[0],
        video_file=video_path,
        question=question,
        answer=(answer_part(answer)[0] or "") if is_sft else answer,
        task=task,
        task_inferred=True,
        split="sft" if is_sft else "rl",
        clues=verifier.get("clues") or "",
        metadata=meta_text,
        events=meta.events,
        category=meta.category,
        duration=meta.duration,
        reasoning_target=answer if is_sft else None,
        extra={"accuracy_ratio": reward.get("accuracy_ratio", 1),
               "format_ratio": reward.get("format_ratio", 1),
               "data_source": row.get("data_source", "EVAdsBench")},
    )


def _verifier(value: object) -> Mapping:
    """``reward_model.verifier``: a list holding one {clues, meta_info} object, or that object."""
    if value is None:
        return {}
    if isinstance(value, (list, tuple)):
        if not value:
            return {}
        value = value[0]
    if not isinstance(value, Mapping):
        raise AnnotationError(f"expected an object with clues/meta_info (or a list of one), "
                              f"got {type(value).__name__}", field="reward_model.verifier")
    for key in ("clues", "meta_info"):
        if value.get(key) is not None and not isinstance(value[key], str):
            raise AnnotationError(f"expected str, got {type(value[key]).__name__}",
                                  field=f"reward_model.verifier.{key}")
    return value


def reasoning_prompt(metadata: str, question: str) -> str:
    """The E-VAds-R1 prompt body: metadata, the question, the think/answer instruction."""
    return f"{metadata}\n\n Question: {question}\n{RL_INSTRUCTION}"


def rl_prompt(record: EvadsRecord) -> str:
    """The RL prompt: speech-only events, the question and the think/answer instruction."""
    speech = tuple(Event(e.start, e.end, (), e.asr) for e in record.events if e.asr is not None)
    body = render_metadata(None, record.duration, speech, speech_label="Audio Speech")
    return VIDEO_MARKER + reasoning_prompt(f"Voiceover: {body}", record.question)


def sft_prompt(record: EvadsRecord) -> str:
    """The SFT prompt: the full metadata (category, duration, per-second lines) and question."""
    return VIDEO_MARKER + reasoning_prompt(record.metadata_text(), record.question)


def sft_target(record: EvadsRecord) -> str:
    """The SFT answer: the record's own reasoning trace, else its clues as the ``<think>``
    block before the ``<answer>`` (the authors' SFT form, no space between the blocks)."""
    return record.reasoning_target or (
        f"<think>{record.clues}</think><answer>{record.answer}</answer>")


def rl_reward_model(record: EvadsRecord) -> dict:
    """The RL split's ``reward_model`` of a record (what verl's reward reads)."""
    return {
        "accuracy_ratio": record.extra.get("accuracy_ratio", 1),
        "answer": record.answer,
        "format_ratio": record.extra.get("format_ratio", 1),
        "ground_truth": f"<answer>{record.answer}</answer>",
        "verifier": [{"clues": record.clues, "meta_info": authors_metadata(record)}],
    }


def to_train_row(record: EvadsRecord, split: str = "rl") -> dict:
    """An RL row, or an SFT row in the published SFT columns (``SFT_COLUMNS``)."""
    if split not in ("rl", "sft"):
        raise ValueError(f"split must be 'rl' or 'sft', got {split!r}")
    row = {
        "data_source": record.extra.get("data_source", "EVAdsBench"),
        "videos": record.video_file,
        "prompt": [{"content": sft_prompt(record) if split == "sft" else rl_prompt(record),
                    "role": "user"}],
        "ability": "QA",
    }
    if split == "sft":
        row["answer"] = sft_target(record)
    else:
        row["reward_model"] = rl_reward_model(record)
    row["extra_info"] = {"id": record.question_id, "video_path": record.video_file}
    return row


# ---- normalized (our JSONL) -------------------------------------------------------

def to_normalized_row(record: EvadsRecord) -> dict:
    return {
        "question_id": record.question_id,
        "video_id": record.video_id,
        "video_file": record.video_file,
        "question": record.question,
        "answer": record.answer,
        "task": record.task,
        "dimension": record.dimension,
        "task_inferred": record.task_inferred,
        "split": record.split,
        "clues": record.clues,
        "metadata": record.metadata,
        "events": [{"start": e.start, "end": e.end, "ocr": list(e.ocr), "asr": e.asr}
                   for e in record.events],
        "category": record.category,
        "duration": record.duration,
        "reasoning_target": record.reasoning_target,
        "model_text": record.model_text,
        "extra": record.extra,
    }


def parse_normalized_row(row: Mapping) -> EvadsRecord:
    events = row.get("events") or []
    if not isinstance(events, (list, tuple)):
        raise AnnotationError(f"expected a list, got {type(events).__name__}", field="events")
    try:
        parsed = tuple(Event(float(e["start"]), float(e["end"]), tuple(e.get("ocr") or ()),
                             e.get("asr")) for e in events)
    except (KeyError, TypeError, ValueError) as exc:
        raise AnnotationError(f"malformed event ({exc})", field="events") from None
    try:
        task = task_code(_need(row, "task"))
    except KeyError as exc:
        raise AnnotationError(exc.args[0], field="task") from None
    task_inferred = _need(row, "task_inferred", bool)
    split = _need(row, "split")  # its value is checked by EvadsRecord
    extra = row.get("extra") or {}
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except json.JSONDecodeError as exc:
            raise AnnotationError(f"invalid JSON ({exc.msg})", field="extra") from None
    if not isinstance(extra, Mapping):
        raise AnnotationError(f"expected an object, got {type(extra).__name__}", field="extra")
    duration = row.get("duration")
    if duration is not None and not isinstance(duration, (int, float)):
        raise AnnotationError(f"expected a number, got {type(duration).__name__}",
                              field="duration")
    return EvadsRecord(
        question_id=str(_need(row, "question_id", (str, int))),
        video_id=str(_need(row, "video_id", (str, int))),
        video_file=_need(row, "video_file"),
        question=_need(row, "question"),
        answer=_need(row, "answer"),
        task=task,
        task_inferred=task_inferred,
        split=split,
        clues=row.get("clues") or "",
        metadata=row.get("metadata") or "",
        events=parsed,
        category=row.get("category"),
        duration=None if duration is None else float(duration),
        reasoning_target=row.get("reasoning_target"),
        model_text=row.get("model_text") or "",
        extra=dict(extra),
    )
