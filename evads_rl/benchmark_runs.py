"""A training run's models scored on its held-out file through the E-VAds lmms-eval tasks.

Each model (the base ``model`` of the config, ``sft/final``, ``grpo/final``) is run by the
``lmms_eval`` console script of :mod:`evads_tasks.lmms_eval_cli` in a subprocess of its own
(the model's memory is freed between models, and the wrapper's video preflight and exit
codes apply: 1 failure, 3 too many judge errors), on ``evaluation/questions.jsonl`` (the
questions of ``data.eval`` that are scored), with the run's judge (``judge: similarity`` is
passed on as the fallback) and its cache. Output: ``evaluation/<name>/`` (results, sample
logs, ``lmms_eval.log``) and ``evads_evaluation.json``, written last, which says what was
scored. A model whose ``evads_evaluation.json`` matches what would be scored now is not run
again, so a rerun generates nothing already written and makes no judge call.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from evads_tasks.core.annotations import EvadsRecord, write_jsonl
from evads_tasks.core.annotations.videos import VIDEO_DIR_ENV, videos_beside
from evads_tasks.core.judge.config import FALLBACK_ENV, SIMILARITY
from evads_tasks.core.judge.error_rate import EXIT_JUDGE_ERRORS
from evads_tasks.core.redaction import env_secrets, redact
from evads_tasks.runs.scored_runs import ScoredRun, load_run
from evads_tasks.tasks.utils import PROMPT_ENV, PROMPT_FORMATS

from .config import ConfigError
from .heldout import eval_file, eval_video_dir
from .resume import RUN_INFO_FILE

EVALUATION_DIR = "evaluation"
QUESTIONS_FILE = "questions.jsonl"
STAMP_FILE = "evads_evaluation.json"
LOG_FILE = "lmms_eval.log"
# lmms-eval's model class for each transformers model_type of the Qwen-VL families.
MODEL_CLASSES = {"qwen2_vl": "qwen2_vl", "qwen2_5_vl": "qwen2_5_vl", "qwen3_vl": "qwen3_vl"}
DEFAULT_PROMPT = "reasoning"  # the prompt the model was trained on, for base and trained alike
LOG_TAIL = 40  # lines of lmms-eval's output shown when it fails


class EvaluationError(RuntimeError):
    """lmms-eval failed on a model (exit 1): the message names the model and the log."""


@dataclass(frozen=True)
class RunModel:
    """One model of a run: ``base``, ``sft`` or ``grpo``, and where its weights are."""

    name: str
    path: str


@dataclass(frozen=True)
class ScoredModel:
    model: RunModel
    run: ScoredRun
    seconds: float | None  # how long lmms-eval took (None: scored by an earlier run)
    exit_code: int  # 0, or 3 when the judge failed on too many answers


def run_models(base: str, root: Path) -> list[RunModel]:
    """The base model, then each finished stage's ``final/`` (SFT, GRPO) of the run."""
    models = [RunModel("base", base)]
    models += [RunModel(stage, str(root / stage / "final")) for stage in ("sft", "grpo")
               if (root / stage / "final" / RUN_INFO_FILE).is_file()]
    return models


def evaluation_settings(config: dict) -> dict:
    """The ``evaluation`` section with its defaults: lmms-eval ``model`` (None: from the
    weights' ``model_type``), ``model_args`` and ``gen_kwargs`` (text, as on lmms-eval's
    command line) and the ``prompt`` format (``reasoning``: the E-VAds-R1 prompt the model
    was trained on; ``answer``: the benchmark's own)."""
    section = dict(config.get("evaluation") or {})
    prompt = section.get("prompt") or DEFAULT_PROMPT
    if prompt not in PROMPT_FORMATS:
        raise ConfigError(f"evaluation.prompt must be one of {', '.join(PROMPT_FORMATS)}, "
                          f"got {prompt!r}")
    for key in ("model", "model_args", "gen_kwargs"):
        if section.get(key) is not None and not isinstance(section[key], str):
            raise ConfigError(f"evaluation.{key} must be text, got {section[key]!r}")
    return {"model": section.get("model"), "model_args": section.get("model_args") or "",
            "gen_kwargs": section.get("gen_kwargs") or "", "prompt": prompt}


def model_class(path: str, settings: dict) -> str:
    """lmms-eval's model class: ``evaluation.model``, else from the weights' ``model_type``."""
    if settings["model"]:
        return settings["model"]
    config_file = Path(path) / "config.json"
    try:
        if config_file.is_file():
            model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
        else:  # a hub id: its config from the local cache (or the hub when reachable)
            from transformers import AutoConfig

            model_type = AutoConfig.from_pretrained(path).model_type
    except Exception as error:  # noqa: BLE001 - any failure means: say which setting to give
        raise ConfigError(f"cannot read the model type of {path} ({error}): set "
                          "evaluation.model to an lmms-eval model class (qwen2_vl, "
                          "qwen2_5_vl, qwen3_vl, ...)") from None
    if model_type not in MODEL_CLASSES:
        raise ConfigError(f"{path}: no lmms-eval class known for model_type {model_type!r}: set "
                          "evaluation.model to an lmms-eval model class")
    return MODEL_CLASSES[model_type]


def write_questions(records: list[EvadsRecord], folder: Path) -> Path:
    """The scored questions as normalized JSONL (every field kept), rewritten only when they
    change, so that an unchanged file keeps its digest."""
    path = folder / QUESTIONS_FILE
    partial = folder / (QUESTIONS_FILE + ".partial")
    write_jsonl(records, partial)
    if path.is_file() and path.read_bytes() == partial.read_bytes():
        partial.unlink()
    else:
        partial.replace(path)
    return path


def videos_of(config: dict) -> str | None:
    """Where lmms-eval finds the evaluation videos: as the training stages do, else the
    ``videos/`` folder beside ``data.eval``."""
    folder = eval_video_dir(config) or videos_beside(eval_file(config))
    return str(folder) if folder else None


def _stamp(model: RunModel, questions: Path, command: list[str], settings: dict) -> dict:
    """What a model's scores depend on: its weights (a trained model's run note), the
    questions, the lmms-eval command and the prompt."""
    info = Path(model.path) / RUN_INFO_FILE
    return {"model": model.name, "path": model.path,
            "training": json.loads(info.read_text(encoding="utf-8")) if info.is_file() else None,
            "questions": hashlib.sha256(questions.read_bytes()).hexdigest(),
            "command": command[3:], "prompt": settings["prompt"]}


def _read_stamp(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def score_model(model: RunModel, config: dict, questions: Path, folder: Path,
                env: dict[str, str] | None = None) -> ScoredModel:
    """``model`` scored on ``questions`` into ``folder/<name>`` (see the module docstring)."""
    settings = evaluation_settings(config)
    out = folder / model.name
    model_args = ",".join(part for part in (f"pretrained={model.path}",
                                            settings["model_args"]) if part)
    command = [sys.executable, "-m", "evads_tasks.lmms_eval_cli",
               "--model", model_class(model.path, settings), "--model_args", model_args,
               "--tasks", "evads", "--output_path", str(out), "--log_samples"]
    if settings["gen_kwargs"]:
        command += ["--gen_kwargs", settings["gen_kwargs"]]
    stamp = _stamp(model, questions, command, settings)
    recorded = _read_stamp(out / STAMP_FILE)
    if recorded and recorded.get("scored") == stamp:
        print(f"[evaluate] {model.name}: already scored ({model.path}): nothing generated, "
              "no judge call", flush=True)
        return ScoredModel(model, load_run(out), None, recorded.get("exit_code", 0))
    (out / STAMP_FILE).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    child_env = {**os.environ, **(env or {}), "EVADS_ANNOTATIONS": str(questions),
                 PROMPT_ENV: settings["prompt"]}
    videos = videos_of(config)
    if videos:
        child_env[VIDEO_DIR_ENV] = videos
    if config.get("judge") == SIMILARITY:
        child_env.setdefault(FALLBACK_ENV, SIMILARITY)
    print(f"[evaluate] {model.name}: lmms-eval on {model.path} (log: {out / LOG_FILE})",
          flush=True)
    started = time.time()
    with (out / LOG_FILE).open("w", encoding="utf-8") as log:
        code = subprocess.call(command, env=child_env, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.time() - started
    if code not in (0, EXIT_JUDGE_ERRORS):
        tail = (out / LOG_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
        raise EvaluationError(redact("\n".join(tail[-LOG_TAIL:]), env_secrets(child_env))
                              + f"\nlmms-eval failed on "
                              f"{model.name} ({model.path}) with exit {code}; full log: "
                              f"{out / LOG_FILE}")
    run = load_run(out, since=started)
    (out / STAMP_FILE).write_text(json.dumps({"scored": stamp, "seconds": round(seconds, 1),
                                              "exit_code": code}, indent=1) + "\n",
                                  encoding="utf-8")
    print(f"[evaluate] {model.name}: {len(run.samples)} answers scored in {seconds:.0f} s",
          flush=True)
    return ScoredModel(model, run, seconds, code)
