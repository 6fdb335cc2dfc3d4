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

TEST_COLUMNS = ("question", "answer", "ques_categories", "goods_category", "asr_input",
                "video_id", "ques_id", "evidence", "asr_ocr_meta")
TRAIN_COLUMNS = ("data_source", "videos", "prompt", "ability", "reward_model", "extra_info")
NORMALIZED_COLUMNS = ("question_id", "video_id", "video_file", "question", "answer", "task",
                      "task_inferred", "split")


def detect_schema(columns: set[str]) -> str:
    """Name the schema a set of columns belongs to: ``normalized``, ``test`` or ``train``."""
    if set(NORMALIZED_COLUMNS) <= columns:
        return "normalized"
    if {"reward_model", "prompt"} <= columns:
        return "train"
    if {"question", "answer"} <= columns:
        return "test"
    raise AnnotationError(
        f"columns {sorted(columns)} match no E-VAds schema (test needs question/answer/"
        f"ques_categories..., RL/SFT need prompt/reward_model...)")


def _need(row: Mapping, name: str, kind: type | tuple[type, ...] = str, *, optional=False):
    if name not in row or row[name] is None:
        if optional:
            return None
        raise AnnotationError("missing column", field=name)
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
        raise AnnotationError("missing column (the task label)", field="ques_categories")
    try:
        task = task_code(label)
    except KeyError as exc:
        raise AnnotationError(exc.args[0], field="ques_categories") from None
    video_id = str(_need(row, "video_id", (str, int)))
    model_text = _need(row, "asr_input", optional=True) or ""
    meta_raw = row.get("asr_ocr_meta")
    if meta_raw is not None and not isinstance(meta_raw, str):
        raise AnnotationError(f"expected str, got {type(meta_raw).__name__}", field="asr_ocr_meta")
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
        metadata=model_text or meta_raw or "",
        events=meta.events,
        category=_need(row, "goods_category", optional=True) or meta.category,
        duration=meta.duration,
    )


def to_test_row(record: EvadsRecord) -> dict:
    meta = render_metadata(chinese_category(record.category), record.duration, record.events)
    return {
        "question": record.question,
        "answer": record.answer,
        "ques_categories": record.task,
        "goods_category": chinese_category(record.category),
        "asr_input": record.metadata or meta,
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
    question_match = _QUESTION.search(prompt[-1]["content"])
    if not question_match:
        raise AnnotationError("no 'Question:' line in the prompt text", field="prompt")
    return question_match.group(1).strip()


def parse_train_row(row: Mapping, task: str) -> EvadsRecord:
    """An RL or SFT row whose task was inferred; SFT when the target has a ``<think>`` trace."""
    question = train_question(row)
    content = row["prompt"][-1]["content"]
    reward = _need(row, "reward_model", Mapping)
    answer = reward.get("answer")
    if not isinstance(answer, str):
        raise AnnotationError("missing or non-text answer", field="reward_model.answer")
    verifier = _verifier(reward.get("verifier"))
    extra = _need(row, "extra_info", Mapping)
    video_path = extra.get("video_path") or _need(row, "videos", (str, list, tuple))
    if isinstance(video_path, (list, tuple)):
        if not video_path:
            raise AnnotationError("empty list of videos", field="videos")
        video_path = video_path[0]
    if not isinstance(video_path, str) or not video_path.strip():
        raise AnnotationError(f"expected a video path, got {video_path!r}", field="videos")
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
    return "<video>" + reasoning_prompt(f"Voiceover: {body}", record.question)


def sft_prompt(record: EvadsRecord) -> str:
    """The SFT prompt: the full metadata (category, duration, per-second lines) and question."""
    return "<video>" + reasoning_prompt(record.metadata_text(), record.question)


def sft_target(record: EvadsRecord) -> str:
    """The SFT answer: the record's own reasoning trace, else its clues as the ``<think>``
    block before the ``<answer>`` (the authors' SFT form, no space between the blocks)."""
    return record.reasoning_target or (
        f"<think>{record.clues}</think><answer>{record.answer}</answer>")


def to_train_row(record: EvadsRecord, split: str = "rl") -> dict:
    if split not in ("rl", "sft"):
        raise ValueError(f"split must be 'rl' or 'sft', got {split!r}")
    meta = record.metadata or render_metadata(
        chinese_category(record.category), record.duration, record.events)
    if split == "sft":
        target, prompt = sft_target(record), sft_prompt(record)
    else:
        target, prompt = record.answer, rl_prompt(record)
    return {
        "data_source": record.extra.get("data_source", "EVAdsBench"),
        "videos": record.video_file,
        "prompt": [{"content": prompt, "role": "user"}],
        "ability": "QA",
        "reward_model": {
            "accuracy_ratio": record.extra.get("accuracy_ratio", 1),
            "answer": target,
            "format_ratio": record.extra.get("format_ratio", 1),
            "ground_truth": f"<answer>{record.answer}</answer>",
            "verifier": [{"clues": record.clues, "meta_info": meta}],
        },
        "extra_info": {"id": record.question_id, "video_path": record.video_file},
    }


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
        extra=dict(extra),
    )
