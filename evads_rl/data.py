"""Annotation files -> the ``datasets.Dataset`` rows TRL's SFT and GRPO trainers read.

TRL's GRPO trainer takes images, not video, so each video becomes ``num_frames``
frames sampled uniformly (segment centres) with decord and passed as ``images``;
the prompt is a chat message with one image placeholder per frame followed by the
text (the ``<video>`` marker of the authors' prompts is replaced by the frames).
RL and SFT rows keep the authors' prompt text as it is; test-schema rows get the
RL prompt rendered from their metadata. Every row also carries what the rewards
need (question, metadata, clues, reference) and the row's identity.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from evads_tasks.core.annotations import (
    TASK_CODES,
    AnnotationError,
    EvadsRecord,
    parse_rows,
    read_rows,
)
from evads_tasks.core.annotations import resolve_video as resolve_video_path
from evads_tasks.core.annotations.schemas import (
    prompt_content,
    rl_prompt,
    sft_prompt,
    sft_target,
)
from evads_tasks.core.without_video import read_filter

VIDEO_MARKER = "<video>"
STAGES = ("sft", "grpo")  # the training stages, in the order E-VAds-R1 runs them


@dataclass(frozen=True)
class FrameSettings:
    """How a video becomes images: how many frames, and the longest side in pixels."""

    num_frames: int = 4
    max_side: int = 224

    def __post_init__(self) -> None:
        if self.num_frames < 1 or self.max_side < 28:
            raise ValueError(f"need num_frames >= 1 and max_side >= 28, got {self}")


def frame_times(duration: float, num_frames: int) -> list[float]:
    """Uniform sample times (centres of ``num_frames`` equal segments), in seconds."""
    return [duration * (i + 0.5) / num_frames for i in range(num_frames)]


def sample_frames(video: str | os.PathLike, settings: FrameSettings) -> tuple[list, list[float]]:
    """``settings.num_frames`` RGB PIL frames of a video and their times in seconds."""
    import decord
    from PIL import Image

    try:
        reader = decord.VideoReader(str(video), num_threads=1)
    except Exception as exc:  # decord raises its own DECORDError
        raise AnnotationError(f"cannot decode video ({exc})", file=str(video)) from None
    count, fps = len(reader), float(reader.get_avg_fps() or 1.0)
    if count == 0:
        raise AnnotationError("video has no frames", file=str(video))
    times = frame_times(count / fps, settings.num_frames)
    indices = [min(count - 1, int(t * fps)) for t in times]
    frames = []
    for array in reader.get_batch(indices).asnumpy():
        image = Image.fromarray(array)
        image.thumbnail((settings.max_side, settings.max_side))
        frames.append(image)
    return frames, [round(i / fps, 2) for i in indices]


def _user_text(prompt_text: str, times: Sequence[float]) -> str:
    stamps = ", ".join(f"{t:g}s" for t in times)
    lead = f"The video is shown as {len(times)} frames sampled at {stamps}."
    body = prompt_text[len(VIDEO_MARKER):] if prompt_text.startswith(VIDEO_MARKER) else prompt_text
    return f"{lead}\n{body.replace(VIDEO_MARKER, '')}"


def chat_prompt(prompt_text: str, times: Sequence[float]) -> list[dict]:
    """One user message: an image placeholder per frame, then the prompt text."""
    content = [{"type": "image", "text": None} for _ in times]
    content.append({"type": "text", "text": _user_text(prompt_text, times)})
    return [{"role": "user", "content": content}]


def load_prompted_records(source: str | os.PathLike, stage: str = "grpo",
                          exclude: str | os.PathLike | None = None
                          ) -> list[tuple[EvadsRecord, str]]:
    """Each record of an annotation file (less those ``exclude`` names) with its prompt text.

    RL/SFT rows keep their own prompt; test-schema and normalized rows get the
    authors' RL prompt (GRPO) or SFT prompt (SFT) rendered from the record.
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    return [(record, prompt_text(row, record, stage))
            for row, record in read_records(source, exclude)]


def read_records(source: str | os.PathLike, exclude: str | os.PathLike | None = None
                 ) -> list[tuple[dict, EvadsRecord]]:
    """Each raw row of an annotation file with its record (the raw row keeps the
    columns a verl-style row carries beyond the record), less the questions the filter file
    ``exclude`` names (:func:`drop_excluded`)."""
    rows = read_rows(source)
    records = list(zip(rows, parse_rows(rows, str(source)), strict=True))
    return drop_excluded(records, exclude, source) if exclude else records


def drop_excluded(records: list[tuple[dict, EvadsRecord]], exclude: str | os.PathLike,
                  source: str | os.PathLike) -> list[tuple[dict, EvadsRecord]]:
    """``records`` without the questions the filter file ``exclude`` names (``python -m
    evads_tasks audit --export-filter``: answerable without the video), saying how many
    went; AnnotationError when none is left."""
    question_filter = read_filter(exclude)
    kept = [(row, r) for row, r in records if r.question_id not in question_filter.question_ids]
    dropped = len(records) - len(kept)
    hint = ("" if dropped else ": none of its ids is in this file (was the filter made from "
            "another one?)")
    print(f"{source}: {len(kept)} of {len(records)} rows kept, {dropped} excluded by "
          f"{question_filter.describe()}{hint}", flush=True)
    if not kept:
        raise AnnotationError(f"every row is excluded by {exclude}", file=str(source))
    return kept


def prompt_text(row: Mapping, record: EvadsRecord, stage: str = "grpo") -> str:
    """A row's own prompt text (RL/SFT rows), else the authors' RL (``grpo``) or SFT prompt
    rendered from its record."""
    if row.get("prompt") is not None:
        return prompt_content(row)
    return rl_prompt(record) if stage == "grpo" else sft_prompt(record)


def build_dataset(source: str | os.PathLike, stage: str, video_dir: str | os.PathLike | None,
                  frames: FrameSettings = FrameSettings(), limit: int | None = None,
                  exclude: str | os.PathLike | None = None):
    """A ``datasets.Dataset`` for the ``grpo`` or ``sft`` stage from an annotation file,
    less the questions of the filter file ``exclude`` (before ``limit``).

    Columns: ``prompt`` (chat), ``images`` (frames), ``question``, ``metadata``,
    ``clues``, ``reference`` (the ground-truth answer), ``question_id``, ``video_id``,
    ``task``, ``accuracy_ratio``, ``format_ratio``, and for SFT ``completion``.
    Frames are decoded once per video (five questions share one).
    """
    import datasets

    prompted = load_prompted_records(source, stage, exclude)[:limit]
    decoded: dict[Path, tuple[list, list[float]]] = {}
    rows = []
    for record, prompt_text in tqdm(prompted, desc=f"{stage} rows (decoding frames)",
                                    unit="row"):
        path = resolve_video_path(record, video_dir)
        if path not in decoded:
            decoded[path] = sample_frames(path, frames)
        images, times = decoded[path]
        row = {
            "prompt": chat_prompt(prompt_text, times),
            "images": images,
            "question": record.question,
            "metadata": record.metadata_text(),
            "clues": record.clues,
            "reference": record.answer,
            "question_id": record.question_id,
            "video_id": record.video_id,
            "task": record.task,
            "accuracy_ratio": float(record.extra.get("accuracy_ratio", 1)),
            "format_ratio": float(record.extra.get("format_ratio", 1)),
        }
        if stage == "sft":
            row["completion"] = [{"role": "assistant",
                                  "content": [{"type": "text", "text": sft_target(record)}]}]
        rows.append(row)
    if not rows:
        raise AnnotationError("no rows to train on", file=str(source))
    return datasets.Dataset.from_list(rows)


def build_task_datasets(source: str | os.PathLike, stage: str,
                        video_dir: str | os.PathLike | None,
                        frames: FrameSettings = FrameSettings(), limit: int | None = None
                        ) -> dict:
    """The validation set as ``{task: datasets.Dataset}`` (BP, CM, ML, CI, RC; a task without
    questions left out), the form TRL's evaluation loop reports per dataset
    (``eval_BP_loss``, ...): rows as :func:`build_dataset` makes them."""
    dataset = build_dataset(source, stage, video_dir, frames, limit)
    tasks = dataset["task"]
    return {task: dataset.select([i for i, t in enumerate(tasks) if t == task])
            for task in TASK_CODES if task in tasks}
