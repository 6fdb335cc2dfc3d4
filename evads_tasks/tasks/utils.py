"""The functions lmms-eval calls for the E-VAds tasks (referenced from the YAMLs).

Data comes from ``$EVADS_ANNOTATIONS`` (a file or a hub dataset id; default: the
authors' hub test split) and videos from ``$EVADS_VIDEO_DIR``, read when a task is
built. lmms-eval 0.7.3 builds every task from a ``datasets.load_dataset`` call
with paths fixed in the YAML, so the YAMLs load the bundled five-row task table
and ``process_docs`` replaces it with that task's questions.

The model is given the test split's ``asr_input`` and the judge its ``asr_ocr_meta`` (each
record keeps both), in either protocol (``$EVADS_PROTOCOL``, chosen with the judge in
``evads_tasks.core.judge.config``): ``evads`` words the question prompt itself; ``official`` builds
it, and the judged text, exactly as the authors' script does, from the user's copy of it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING

from evads_tasks.core.annotations import (
    ANNOTATIONS_ENV,
    HUB_DATASET,
    TASKS,
    VIDEO_DIR_ENV,
    AnnotationError,
    EvadsRecord,
    load_annotations,
    resolve_video,
)
from evads_tasks.core.annotations.hub import download_hub_dataset
from evads_tasks.core.annotations.schemas import reasoning_prompt
from evads_tasks.core.annotations.videos import videos_beside
from evads_tasks.core.chat.client import ChatError
from evads_tasks.core.judge import Judge, JudgeRequest, JudgeResult, judge_from_env
from evads_tasks.core.judge.accounting import judge_price, usage_record
from evads_tasks.core.judge.api import JudgeConfigError
from evads_tasks.core.judge.canary import check as check_canary
from evads_tasks.core.judge.config import JUDGE_ENVS, judge_concurrency, judge_protocol
from evads_tasks.core.judge.error_rate import RUN_TALLY
from evads_tasks.core.judge.parsing import has_verdict_line
from evads_tasks.core.judge.protocols import OFFICIAL, JudgeProtocol
from evads_tasks.core.responses import authors_judged_text, judged_text
from evads_tasks.core.video_probe import BadVideosError, bad_video_mode, check_videos
from evads_tasks.tasks.intervals import install as install_intervals
from evads_tasks.tasks.judge_pool import NumberedResponse
from evads_tasks.tasks.metrics import EXCLUDED_KEY, VERDICT_LINE_KEY, sample_metrics
from evads_tasks.tasks.outcome import RUN_WATCH, stop_run

if TYPE_CHECKING:  # imported where used: `datasets` takes seconds, and rescore needs none
    import datasets

logger = logging.getLogger(__name__)

PROMPT_ENV = "EVADS_PROMPT"
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov")
PROMPT_FORMATS = ("answer", "reasoning")
# The evads protocol's instruction, in our own words (the official protocol takes the
# authors' template from their script): answer from the video and the text within 50 words.
EVADS_INSTRUCTION = ("Based on the video and the time-aligned OCR/ASR text above, "
                     "answer the question below in no more than 50 words.")
# The test-schema columns the authors' question template may read -> the doc's fields.
TEMPLATE_FIELDS = {"question": "question", "asr_input": "model_text",
                   "asr_ocr_meta": "metadata", "evidence": "clues", "answer": "answer"}

# A run makes one judge per setting of judge_from_env's variables (JUDGE_ENVS), and checks
# its canary once.
_judges: dict[tuple[str | None, ...], Judge] = {}
_judge_lock = threading.Lock()
_canaries: dict[tuple[str | None, ...], dict] = {}
_canary_lock = threading.Lock()


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


def task_docs(code: str, task_table: datasets.Dataset) -> datasets.Dataset:
    """``process_docs``: this task's questions, each with its resolved video path.

    Runs :func:`preflight` first: bad annotations, an undecodable video, no judge or an
    unreachable one stop the run here, before any generation (``outcome.RunStopped``).
    """
    import datasets

    if code not in task_table["code"]:
        raise ValueError(f"task {code} is not in the bundled task table {task_table['code']}")
    install_intervals()  # clustered stderrs in lmms-eval's results (tasks/intervals.py)
    source, root, usable, excluded = preflight()
    records = [r for r in usable if r.task == code]
    try:
        if not records:
            left = f" left: all {excluded[code]} have a bad video" if excluded.get(code) else ""
            raise AnnotationError(f"no {code} ({TASKS[code].name}) questions{left}", file=source)
        docs = [_doc(r, _video(r, root), index) for index, r in enumerate(records)]
    except AnnotationError as error:
        raise stop_run(error) from error
    for doc in docs:
        doc[EXCLUDED_KEY] = excluded.get(code, 0)
    return datasets.Dataset.from_list(docs)


def preflight() -> tuple[str, Path | None, tuple[EvadsRecord, ...], dict[str, int]]:
    """What every E-VAds run checks before any generation, in every launch mode (the tasks'
    ``process_docs`` runs it; the ``lmms_eval`` console script also before the model
    loads): the annotations, every video (probed once), the judge's settings and, unless
    the run only predicts, that the judge answers and still judges its pinned canary items
as pinned. Returns (source, video folder, usable
    records, questions left out per task); raises ``outcome.RunStopped``."""
    RUN_WATCH.install()
    try:
        judge_price()
        judge_concurrency()
        source = annotation_source()
        root = video_dir(source)
        usable, excluded = usable_records(source, root)
        if not predict_only():
            _check_reachable(get_judge())
            judge_canary()
    except (AnnotationError, BadVideosError, JudgeConfigError) as error:
        raise stop_run(error) from error
    return source, root, usable, excluded


def predict_only() -> bool:
    """Whether lmms-eval was asked only to predict (``--predict_only``/``-x``): no judge is
    called then, so none has to answer (``python -m evads_tasks rescore`` judges later)."""
    return any(arg in ("--predict_only", "-x") for arg in sys.argv[1:])


@lru_cache(maxsize=8)
def _check_reachable(judge: Judge) -> None:
    check = getattr(judge, "check_reachable", None)
    if check is None:  # an offline judge: nothing to reach
        return
    try:
        check()
    except ChatError as error:
        raise JudgeConfigError(f"the judge is not reachable, so no answer could be scored: "
                               f"{error.reason} ({judge.name}); start it or set "
                               f"EVADS_JUDGE_BASE_URL") from error


# ---- videos probed before inference ---------------------------------------------------

def usable_records(source: str, root: Path | None) -> tuple[tuple[EvadsRecord, ...],
                                                             dict[str, int]]:
    """The source's records whose video decodes, and per task how many were left out.

    Every video is probed once per run (and cached on disk) before any model or judge
    call: a bad one raises BadVideosError listing every bad file, or with
    EVADS_BAD_VIDEOS=skip its questions are left out and counted.
    """
    path = Path(source).expanduser()
    return _usable(source, path.stat().st_mtime_ns if path.exists() else 0,
                   None if root is None else str(root), bad_video_mode())


@lru_cache(maxsize=4)
def _usable(source: str, stamp: int, root: str | None,
            mode: str) -> tuple[tuple[EvadsRecord, ...], dict[str, int]]:
    records = _records(source, stamp)
    paths = {r.question_id: resolve_video(r, root, must_exist=False) for r in records}
    videos: dict[Path, list[str]] = {}
    for record in records:
        videos.setdefault(paths[record.question_id], []).append(record.question_id)
    bad = check_videos(videos, mode=mode)
    excluded: dict[str, int] = {}
    for record in records:
        if paths[record.question_id] in bad:
            excluded[record.task] = excluded.get(record.task, 0) + 1
    return tuple(r for r in records if paths[r.question_id] not in bad), excluded


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


def _doc(record: EvadsRecord, video: Path, index: int) -> dict:
    return {**record_doc(record, index), "video_path": str(video)}


def record_doc(record: EvadsRecord, index: int) -> dict:
    """A task doc without its video: all the judge needs."""
    return {
        "doc_index": index,  # its place among the task's docs (judge_pool's look-ahead)
        "question_id": record.question_id, "video_id": record.video_id,
        "question": record.question, "answer": record.answer,
        "task": record.task, "dimension": record.dimension,
        "category": record.category or "unknown", "clues": record.clues,
        "metadata": record.metadata_text(),   # what the judge reads (asr_ocr_meta)
        "model_text": record.model_input(),   # what the model reads (asr_input)
    }


def task_record_docs(source: str, code: str) -> list[dict]:
    """Task ``code``'s docs as ``process_docs`` builds them from ``source``, in its order,
    without probing or resolving videos (a ``--predict_only`` run's predictions are judged
    where the videos may not be)."""
    path = Path(source).expanduser()
    records = _records(source, path.stat().st_mtime_ns if path.exists() else 0)
    return [record_doc(r, index) for index, r in enumerate(r for r in records if r.task == code)]


bp_docs = partial(task_docs, "BP")
cm_docs = partial(task_docs, "CM")
ml_docs = partial(task_docs, "ML")
ci_docs = partial(task_docs, "CI")
rc_docs = partial(task_docs, "RC")


# ---- prompt ------------------------------------------------------------------------

def doc_to_visual(doc: dict) -> list[str]:
    return [doc["video_path"]]


def prompt_format(kwargs: dict | None) -> str:
    """``$EVADS_PROMPT`` overrides the task's ``prompt_format`` kwarg (default: answer)."""
    chosen = os.environ.get(PROMPT_ENV) or (kwargs or {}).get("prompt_format", "answer")
    if chosen not in PROMPT_FORMATS:
        raise ValueError(f"{PROMPT_ENV}/prompt_format must be one of {PROMPT_FORMATS}, "
                         f"got {chosen!r}")
    return chosen


def question_text(doc: dict, protocol: JudgeProtocol) -> str:
    """The ``answer`` prompt: under the official protocol the authors' ``input_question``
    template filled from the row; else the model text, a blank line, our 50-word
    instruction and the question."""
    if protocol.script is not None:
        template = protocol.script.question_template
        return template.render({column: doc[TEMPLATE_FIELDS[column]]
                                for column in template.columns})
    return f"{doc['model_text']}\n\n{EVADS_INSTRUCTION}\n{doc['question']}"


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """``answer`` (default): the protocol's question prompt (:func:`question_text`).

    ``reasoning`` (E-VAds-R1 style): the training prompt's order and its
    ``<think>..</think> <answer>..</answer>`` instruction, in either protocol.
    """
    kwargs = lmms_eval_specific_kwargs or {}
    if prompt_format(kwargs) == "reasoning":
        body = reasoning_prompt(doc["model_text"], doc["question"])
    else:
        body = question_text(doc, judge_protocol())
    return f"{kwargs.get('pre_prompt', '')}{body}{kwargs.get('post_prompt', '')}"


def doc_to_target(doc: dict) -> str:
    return doc["answer"]


# ---- judging -----------------------------------------------------------------------

def _judge_setting() -> tuple[str | None, ...]:
    return tuple(os.environ.get(name) for name in JUDGE_ENVS)


def get_judge() -> Judge:
    """The run's judge, created once from the environment (shared by lmms-eval's threads)."""
    setting = _judge_setting()
    with _judge_lock:
        if setting not in _judges:
            _judges[setting] = judge_from_env()
        return _judges[setting]


def judge_canary() -> dict:
    """The run's judge checked against its pinned canary (``core.judge.canary.check``: the
    items judged again, bypassing the cache; a WARNING when it drifted), once per run and
    judge setting, before any generation: call it from the run's build step. Its record
    goes into each sample's ``evads_run``, so the results and the report keep it."""
    setting = _judge_setting()
    with _canary_lock:
        if setting not in _canaries:
            result = check_canary()
            if result.warns:
                logger.warning("WARNING: %s", result.message)
            _canaries[setting] = result.record()
        return _canaries[setting]


def run_description(judge: Judge, protocol: JudgeProtocol) -> dict:
    """How the run is made, as each logged sample and the results JSON (``evads_run``) say;
    with the judge canary's result once the build step checked it."""
    script = protocol.script
    canary = _canaries.get(_judge_setting())
    return {"protocol": protocol.name,
            "official_script_sha256": script.sha256 if script is not None else None,
            "prompt": prompt_format(None), "judge": judge.settings(),
            **({"canary": canary} if canary is not None else {})}


def process_results(doc: dict, results: list[str]) -> dict[str, dict]:
    """Judge one response; the values carry ids, ``judge_errors`` the raw reply and
    ``evads_run`` how the run is made.

    The judged text is the protocol's: the ``<answer>`` part by our rule (evads) or by the
    authors' (official). Under the evads protocol an empty answer scores 0 without a judge
    call (``NO_ANSWER``); the official protocol sends it, as the authors' script does. Either
    way its record says ``no_answer: true``. Answers are judged ``$EVADS_JUDGE_CONCURRENCY``
    at a time whatever lmms-eval's thread count (``judge_pool``). A judge cache that failed
    (the disk filled) costs no verdict, but fails the run once its results are written
    (``RUN_TALLY.problem``).
    """
    response = results[0]
    if isinstance(response, NumberedResponse):
        result, judged, values = response.batch.verdict(doc, response, _judging)
    else:
        result, judged, values = _judging()[0](doc, response)
    RUN_TALLY.add(result, judged=judged)
    return values


def _judging() -> tuple[Callable[[dict, str], tuple[JudgeResult, bool, dict]], int]:
    """The run's judge function (the judge, protocol and run description as configured
    now) and how many answers it may judge at once."""
    judge, protocol = get_judge(), judge_protocol()
    run = run_description(judge, protocol)

    def judge_one(doc: dict, response: str) -> tuple[JudgeResult, bool, dict]:
        judged = judge_doc(judge, protocol, doc, response, run)
        if problem := getattr(judge, "problem", None):  # its cache failed: see RUN_TALLY
            RUN_TALLY.problem(problem)
        return judged

    return judge_one, judge_concurrency()


def judge_request(protocol: JudgeProtocol, doc: dict, response: str) -> JudgeRequest:
    """What the protocol sends the judge for ``response`` to ``doc``: the protocol's judged
    text (the ``<answer>`` part by our rule, or by the authors') and the doc's inputs."""
    official = protocol.name == OFFICIAL
    return JudgeRequest(question=doc["question"], metadata=doc["metadata"],
                        clues=doc["clues"], reference=doc["answer"],
                        answer=(authors_judged_text if official else judged_text)(response))


def judge_doc(judge: Judge, protocol: JudgeProtocol, doc: dict, response: str,
              run: dict) -> tuple[JudgeResult, bool, dict[str, dict]]:
    """Judge ``response`` to ``doc`` and build the sample's metric values: (the verdict,
    whether it counts as a judged answer for the error rate, the values).

    ``run`` is the run description (:func:`run_description`, read once per task), whose
    judge settings name the model. Shared by :func:`process_results` and ``python -m
    evads_tasks rescore``, which re-judges logged samples: the judge record keeps the judge's
    ``inputs`` (question, metadata, clues, reference) so that a logged sample can be judged
    again without the dataset.
    """
    request = judge_request(protocol, doc, response)
    answer = request.answer
    inputs = {"question": request.question, "metadata": request.metadata,
              "clues": request.clues, "reference": request.reference}
    result = judge.judge(request)
    ids = {key: doc[key] for key in ("question_id", "video_id", "task", "category")}
    record = {"judge": result.judge, "protocol": protocol.name, "raw": result.raw,
              "error": result.error, "cached": result.cached, "judge_score": result.score,
              "judged_answer": answer, "no_answer": not answer.strip(),
              VERDICT_LINE_KEY: has_verdict_line(answer), "inputs": inputs}
    values = sample_metrics(result.score, record, ids, doc.get(EXCLUDED_KEY) or 0, run=run,
                            levels_only=protocol.levels_only,
                            usage=usage_record(result, run["judge"].get("model")))
    return result, not protocol.by_rule(request), values
