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
# The first words of that instruction: in the published SFT split the question is the last
# line before it, with no label.
INSTRUCTION_START = "You are permitted to gather any relevant clues"
_QUESTION = re.compile(r"Question:\s*(.+)")
# A question line; the last one wins, so that on-screen text quoting "Question:" inside the
# metadata is never taken for it.
_QUESTION_LINE = re.compile(r"(?m)^[ \t]*Question:\s*(.+)")
# Lines of a prompt's metadata block (header, event list), which are never its question.
_METADATA_LINE = re.compile(r"^(?:Voiceover:\s*)?(?:Time\s+\d|Category:|Duration:|"
                            r"\[Time-aligned Events\]:)")
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


def _json_cell(value: object, field: str) -> object:
    """A cell that may hold an object as JSON text: the text decoded, anything else as is."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"invalid JSON ({exc.msg})", field=field) from None


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

def prompt_messages(value: object) -> list[Mapping]:
    """The chat messages of a ``prompt`` cell as files hold it: a list (pyarrow), a tuple, a
    numpy array of dicts (pandas), one message, or any of these as JSON text; text that is
    not JSON is the message's content."""
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            decoded = value
        value = {"role": "user", "content": decoded} if isinstance(decoded, str) else decoded
    if isinstance(value, Mapping):
        value = [value]
    elif hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        value = value.tolist()  # a numpy array of message dicts
    if not isinstance(value, (list, tuple)) or not value:
        raise AnnotationError("expected a list of chat messages with 'content', got "
                              f"{type(value).__name__ if value is not None else 'null'}"
                              + (" (empty)" if isinstance(value, (list, tuple)) else ""),
                              field="prompt")
    return list(value)


def prompt_content(row: Mapping) -> str:
    """The text of an RL/SFT row's prompt (its last message), line ends made ``\\n``.
    A message's content may be text or a list of ``{"type": "text", "text": ...}`` parts."""
    if row.get("prompt") is None:
        raise AnnotationError("missing column" if "prompt" not in row else "null value",
                              field="prompt")
    message = prompt_messages(row["prompt"])[-1]
    if not isinstance(message, Mapping) or "content" not in message:
        raise AnnotationError("expected a list of chat messages with 'content'", field="prompt")
    content = message["content"]
    if hasattr(content, "tolist") and not isinstance(content, str):
        content = content.tolist()
    if isinstance(content, (list, tuple)):
        content = "".join(str(part.get("text") or "") for part in content
                          if isinstance(part, Mapping))
    if not isinstance(content, str):
        raise AnnotationError(f"message content: expected text, got {type(content).__name__}",
                              field="prompt")
    return content.replace("\r\n", "\n").replace("\r", "\n")


def split_prompt(content: str) -> tuple[str, str]:
    """An RL/SFT prompt's text before its question (metadata, ``<video>`` marker removed) and
    the question.

    Two layouts: the RL split's labelled ``Question: ...`` line, and the published SFT
    split's unlabelled question, the last non-blank line before the instruction paragraph
    (``You are permitted to gather any relevant clues...``)."""
    labelled = _question_match(content)
    if labelled:
        head, question = content[:labelled.start()], labelled.group(1).strip()
    else:
        lines = content.split("\n")
        instruction = next((n for n, line in enumerate(lines)
                            if line.strip().startswith(INSTRUCTION_START)), None)
        if instruction is None:
            raise AnnotationError(
                "no question in the prompt text: neither a 'Question:' line (RL split) nor "
                f"a question line before the instruction '{INSTRUCTION_START}...' (SFT split)",
                field="prompt")
        last = next((n for n in range(instruction - 1, -1, -1) if lines[n].strip()), None)
        line = "" if last is None else lines[last].replace(VIDEO_MARKER, "").strip()
        if not line or _METADATA_LINE.match(line):
            raise AnnotationError(
                f"no question line before the instruction '{INSTRUCTION_START}...' (the line "
                f"before it is {line[:80]!r})" if line else
                f"nothing before the instruction '{INSTRUCTION_START}...'", field="prompt")
        head, question = "\n".join(lines[:last]), line
    return head.replace(VIDEO_MARKER, "", 1).strip(), question


def train_question(row: Mapping) -> tuple[str, str]:
    """An RL/SFT row's video id and the question inside its prompt: what the task
    classifier needs before the row is parsed (it labels a video's questions together)."""
    return _video_id(_video_path(row, _extra_info(row))), split_prompt(prompt_content(row))[1]


def _video_id(video_path: str) -> str:
    """A training row's video id: its video's file stem (``../videos/698.mp4`` -> ``698``)."""
    return video_file_name(video_path).rsplit(".", 1)[0]


def _question_match(content: str) -> re.Match | None:
    lines = list(_QUESTION_LINE.finditer(content))
    return lines[-1] if lines else _QUESTION.search(content)


def _extra_info(row: Mapping) -> Mapping:
    """``extra_info``: an object, or its JSON text."""
    extra = _json_cell(row.get("extra_info"), "extra_info")
    return _need({"extra_info": extra} if "extra_info" in row else {}, "extra_info", Mapping)


def _video_path(row: Mapping, extra: Mapping) -> str:
    video_path = extra.get("video_path") or row.get("videos")
    if hasattr(video_path, "tolist") and not isinstance(video_path, str):
        video_path = video_path.tolist()  # a numpy array (pandas)
    video_path = video_path or _need(row, "videos", (str, list, tuple))
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
    meta_text, question = split_prompt(prompt_content(row))
    target = _need(row, "answer")
    extra = _extra_info(row)
    if "id" not in extra:
        raise AnnotationError("missing question id", field="extra_info.id")
    video_path = _video_path(row, extra)
    meta = _metadata(meta_text, "prompt")
    return EvadsRecord(
        question_id=str(extra["id"]),
        video_id=_video_id(video_path),
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
    content = prompt_content(row)
    question = split_prompt(content)[1]
    reward = _need(row, "reward_model", Mapping)
    answer = reward.get("answer")
    if not isinstance(answer, str):
        raise AnnotationError("missing or non-text answer", field="reward_model.answer")
    verifier = _verifier(reward.get("verifier"))
    extra = _extra_info(row)
    video_path = _video_path(row, extra)
    meta_text = verifier.get("meta_info") or ""
    meta = _metadata(meta_text or content, "reward_model.verifier.meta_info")
    is_sft = "<think>" in answer
    if "id" not in extra:
        raise AnnotationError("missing question id", field="extra_info.id")
    return EvadsRecord(
        question_id=str(extra["id"]),
        video_id=_video_id(video_path),
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
    """The published SFT split's prompt: the full metadata (category, duration, per-second
    lines), the question on its own line with no label, a blank line, the instruction."""
    return f"{VIDEO_MARKER}{record.metadata_text()}\n{record.question}\n\n{RL_INSTRUCTION}"


def sft_target(record: EvadsRecord) -> str:
    """The SFT answer: the record's own reasoning trace, else its clues as the ``<think>``
    block, a line break, then the ``<answer>`` (the published SFT split's form)."""
    return record.reasoning_target or (
        f"<think>{record.clues}</think>\n<answer>{record.answer}</answer>")


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
    extra = _json_cell(row.get("extra") or {}, "extra")
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
