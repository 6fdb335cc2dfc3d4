"""The functions lmms-eval calls for the E-VAds tasks (referenced from the YAMLs).

Data comes from ``$EVADS_ANNOTATIONS`` (a file or a hub dataset id; default: the
authors' hub test split) and videos from ``$EVADS_VIDEO_DIR``, read when a task is
built. lmms-eval 0.7.3 builds every task from a ``datasets.load_dataset`` call
with paths fixed in the YAML, so the YAMLs load the bundled five-row task table
and ``process_docs`` replaces it with that task's questions.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache, partial
from pathlib import Path

import datasets

from evads_tasks.annotations import (
    ANNOTATIONS_ENV,
    HUB_DATASET,
    TASKS,
    VIDEO_DIR_ENV,
    AnnotationError,
    EvadsRecord,
    load_annotations,
    resolve_video,
)
from evads_tasks.annotations.hub import download_hub_dataset
from evads_tasks.annotations.schemas import reasoning_prompt
from evads_tasks.annotations.videos import videos_beside
from evads_tasks.judge import Judge, JudgeRequest, judge_from_env
from evads_tasks.judge.config import JUDGE_ENVS
from evads_tasks.metrics import sample_metrics
from evads_tasks.responses import judged_text

PROMPT_ENV = "EVADS_PROMPT"
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov")
PROMPT_FORMATS = ("official", "reasoning")
# The official protocol's instruction (the public material gives its gist, not its
# wording): answer from the video and the OCR/ASR text within about 50 words.
OFFICIAL_INSTRUCTION = ("Based on the video and the time-aligned OCR/ASR text above, "
                        "answer the question below in no more than 50 words.")

# A run makes one judge per setting of judge_from_env's variables (JUDGE_ENVS).
_judges: dict[tuple[str | None, ...], Judge] = {}
_judge_lock = threading.Lock()


# ---- data --------------------------------------------------------------------------

def annotation_source() -> str:
    """``$EVADS_ANNOTATIONS`` or the authors' hub dataset (its test split)."""
    return os.environ.get(ANNOTATIONS_ENV) or HUB_DATASET


def video_dir(source: str) -> Path | None:
    """``$EVADS_VIDEO_DIR``; else, for a local file, ``videos/`` beside its ``annotations/``
    folder (the authors' and the sample's layout) or beside the file itself; else, for the
    hub, its downloaded ``videos/``."""
    if os.environ.get(VIDEO_DIR_ENV):
        return Path(os.environ[VIDEO_DIR_ENV]).expanduser()
    path = Path(source).expanduser()
    if path.exists():
        return videos_beside(path)
    return _hub_videos(source)


@lru_cache(maxsize=4)
def _hub_videos(dataset_id: str) -> Path:
    """The hub dataset's downloaded ``videos/``, fetched once per run, not once per task (the
    five tasks each ask; a failure is not cached)."""
    return download_hub_dataset(
        dataset_id, ["videos/*"],
        f"set {VIDEO_DIR_ENV} to a local folder of <video_id>.mp4 files") / "videos"


@lru_cache(maxsize=4)
def _records(source: str, stamp: int) -> tuple[EvadsRecord, ...]:
    """Parsed once per source version (``stamp``: file mtime), shared by the five tasks."""
    return tuple(load_annotations(source, split="test"))


def _load(source: str) -> tuple[EvadsRecord, ...]:
    path = Path(source).expanduser()
    return _records(source, path.stat().st_mtime_ns if path.exists() else 0)


def task_docs(code: str, task_table: datasets.Dataset) -> datasets.Dataset:
    """``process_docs``: this task's questions, each with its resolved video path.

    Fails here, before any inference, on bad annotations, a missing video (naming
    the question id and the path) or an unconfigured judge.
    """
    if code not in task_table["code"]:
        raise ValueError(f"task {code} is not in the bundled task table {task_table['code']}")
    get_judge()
    source = annotation_source()
    records = [r for r in _load(source) if r.task == code]
    if not records:
        raise AnnotationError(f"no {code} ({TASKS[code].name}) questions", file=source)
    root = video_dir(source)
    return datasets.Dataset.from_list([_doc(r, _video(r, root)) for r in records])


def _video(record: EvadsRecord, root: Path | None) -> Path:
    """The record's video, with a suffix lmms-eval's video models read as a video.

    lmms-eval 0.7.3's ``qwen2_5_vl`` simple backend (``--force_simple``) treats only
    paths ending in lowercase ``.mp4``, ``.avi`` or ``.mov`` as videos and silently
    drops any other visual, which would score a text-only run as if it had seen the
    video; refusing other names keeps every backend on the same inputs.
    """
    path = resolve_video(record, root)
    if not path.name.endswith(VIDEO_SUFFIXES):
        raise AnnotationError(
            f"video {path} of question {record.question_id} has an unsupported suffix: "
            f"lmms-eval's qwen2_5_vl (simple backend) reads only "
            f"{', '.join(VIDEO_SUFFIXES)} (lowercase) and drops others; convert or rename it",
            field="video_file")
    return path


def _doc(record: EvadsRecord, video: Path) -> dict:
    return {
        "question_id": record.question_id, "video_id": record.video_id,
        "video_path": str(video), "question": record.question, "answer": record.answer,
        "task": record.task, "dimension": record.dimension,
        "category": record.category or "unknown", "clues": record.clues,
        "metadata": record.metadata_text(),
    }


bp_docs = partial(task_docs, "BP")
cm_docs = partial(task_docs, "CM")
ml_docs = partial(task_docs, "ML")
ci_docs = partial(task_docs, "CI")
rc_docs = partial(task_docs, "RC")


# ---- prompt ------------------------------------------------------------------------

def doc_to_visual(doc: dict) -> list[str]:
    return [doc["video_path"]]


def prompt_format(kwargs: dict | None) -> str:
    """``$EVADS_PROMPT`` overrides the task's ``prompt_format`` kwarg (default: official)."""
    chosen = os.environ.get(PROMPT_ENV) or (kwargs or {}).get("prompt_format", "official")
    if chosen not in PROMPT_FORMATS:
        raise ValueError(f"{PROMPT_ENV}/prompt_format must be one of {PROMPT_FORMATS}, "
                         f"got {chosen!r}")
    return chosen


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """Official: metadata, a blank line, the 50-word instruction, the question.

    Reasoning (E-VAds-R1 style): the training prompt's order and its
    ``<think>..</think> <answer>..</answer>`` instruction.
    """
    kwargs = lmms_eval_specific_kwargs or {}
    if prompt_format(kwargs) == "reasoning":
        body = reasoning_prompt(doc["metadata"], doc["question"])
    else:
        body = f"{doc['metadata']}\n\n{OFFICIAL_INSTRUCTION}\n{doc['question']}"
    return f"{kwargs.get('pre_prompt', '')}{body}{kwargs.get('post_prompt', '')}"


def doc_to_target(doc: dict) -> str:
    return doc["answer"]


# ---- judging -----------------------------------------------------------------------

def get_judge() -> Judge:
    """The run's judge, created once from the environment (shared by lmms-eval's threads)."""
    setting = tuple(os.environ.get(name) for name in JUDGE_ENVS)
    with _judge_lock:
        if setting not in _judges:
            _judges[setting] = judge_from_env()
        return _judges[setting]


def process_results(doc: dict, results: list[str]) -> dict[str, dict]:
    """Judge one response; the values carry ids, and ``judge_errors`` the raw reply.

    An empty answer scores 0 without a judge call (the judge's rule, ``NO_ANSWER``);
    its record says ``no_answer: true``.
    """
    answer = judged_text(results[0])
    result = get_judge().judge(JudgeRequest(
        question=doc["question"], metadata=doc["metadata"], clues=doc["clues"],
        reference=doc["answer"], answer=answer))
    ids = {key: doc[key] for key in ("question_id", "video_id", "task", "category")}
    record = {"judge": result.judge, "raw": result.raw, "error": result.error,
              "cached": result.cached, "judge_score": result.score, "judged_answer": answer,
              "no_answer": not answer.strip()}
    return sample_metrics(result.score, record, ids)
