"""Checking a run config before any work: TRL configs, LoRA, frames, judge, paths.

Why a module of its own: every stage (and ``python -m evads_rl validate``) checks all of a
run's settings before a frame is decoded or a step trained, and the checks are the same
whether a stage then trains or not.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from evads_tasks.core.annotations.io import looks_like_path

from .benchmark_runs import evaluation_settings
from .config import ConfigError
from .data import STAGES, FrameSettings
from .heldout import eval_file, eval_limit, missing_eval_paths
from .judge_guard import CONFIG_SECTION, JudgeStopRule
from .judging import JUDGE_MODES
from .rewards import RewardWeights

TINY_PREFIX = "tiny:"
DATA_KEYS = {"sft": "sft", "grpo": "rl"}  # each stage's annotation file in the data section


def judge_stop_rule(config: dict) -> JudgeStopRule:
    """The run config's ``judge_stop`` section (when GRPO stops on a dead judge)."""
    try:
        return JudgeStopRule.from_mapping(config.get(CONFIG_SECTION))
    except ValueError as error:
        raise ConfigError(str(error)) from None


def frame_settings(config: dict) -> FrameSettings:
    data = config["data"]
    return FrameSettings(num_frames=int(data.get("num_frames", 4)),
                         max_side=int(data.get("max_side", 224)))


def _settings_error(section: str, cls_name: str, key: str, valid: Sequence[str]) -> ConfigError:
    near = difflib.get_close_matches(key, valid, n=3)
    hint = f" (did you mean {', '.join(near)}?)" if near else ""
    return ConfigError(f"{section}.{key} is not a {cls_name} setting{hint}; see {cls_name} "
                       "for the valid keys")


def _typed_settings(cls, section: str, values: Mapping) -> dict:
    """``values`` checked against the fields of the dataclass ``cls``: every key a field,
    and no text where the field takes a number or a flag (YAML reads ``1e-5`` as text:
    write ``1.0e-5``)."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{section} must be a mapping of {cls.__module__.split('.')[0]}."
                          f"{cls.__name__} settings")
    fields = {field.name: field for field in dataclasses.fields(cls) if field.init}
    name = f"{cls.__module__.split('.')[0]}.{cls.__name__}"
    for key, value in values.items():
        if key not in fields:
            raise _settings_error(section, name, key, list(fields))
        default, annotation = fields[key].default, str(fields[key].type)
        flag = isinstance(default, bool)
        number = isinstance(default, (int, float)) and not flag
        if isinstance(value, str) and (flag or number) and "str" not in annotation:
            raise ConfigError(f"{section}.{key}: expected {type(default).__name__} like "
                              f"{default!r}, got the text {value!r}")
    return dict(values)


def _trl_config(cls, section: str, config: dict, output_dir, neutral_hardware: bool, **extra):
    """TRL's config for one stage; ``neutral_hardware`` parses it as on a CPU machine
    (``use_cpu``), so a GPU config (bf16, vLLM) can be validated where there is no GPU."""
    values = {**validation_settings(config), **_typed_settings(cls, section, config[section])}
    if neutral_hardware:
        values["use_cpu"] = True
    try:
        return cls(output_dir=str(output_dir), **extra, **values)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{section}: not a valid {cls.__name__}: {error}") from None


def validation_settings(config: dict) -> dict:
    """What turns on TRL's validation when ``data.eval`` is set, unless the stage's section
    says otherwise: evaluate before the first step and every ``eval_steps`` (default: TRL's,
    ``logging_steps``)."""
    return {"eval_strategy": "steps", "eval_on_start": True} if eval_file(config) else {}


def peft_config(config: dict):
    if not config.get("peft"):
        return None
    from peft import LoraConfig

    try:
        return LoraConfig(**_typed_settings(LoraConfig, "peft", config["peft"]))
    except (TypeError, ValueError) as error:
        raise ConfigError(f"peft: not a valid LoraConfig: {error}") from None


def sft_args(config: dict, output_dir: str | os.PathLike, neutral_hardware: bool = False):
    from trl import SFTConfig

    return _trl_config(SFTConfig, "sft", config, output_dir, neutral_hardware)


def grpo_args(config: dict, output_dir: str | os.PathLike, neutral_hardware: bool = False):
    from trl import GRPOConfig

    try:
        weights = RewardWeights.from_mapping(config.get("reward_weights"))
    except (TypeError, ValueError) as error:
        raise ConfigError(f"reward_weights: {error}") from None
    return _trl_config(GRPOConfig, "grpo", config, output_dir, neutral_hardware,
                       reward_weights=weights.as_list())


def stage_args(config: dict, stage: str, output_dir: str | os.PathLike,
               neutral_hardware: bool = False):
    """The TRL config of ``stage`` (``sft`` or ``grpo``)."""
    build = sft_args if stage == "sft" else grpo_args
    return build(config, output_dir, neutral_hardware)


def check_settings(config: dict, stage_dirs: Mapping[str, Path],
                   neutral_hardware: bool = False) -> dict:
    """Every setting of the stages (``{stage: its output folder}``) checked (TRL configs,
    LoRA, judge, frames, launcher file) before anything is decoded or trained; returns
    each stage's TRL config."""
    judge = config.get("judge", "env")
    if judge not in JUDGE_MODES:
        raise ConfigError(f"judge must be one of {', '.join(JUDGE_MODES)}, got {judge!r}")
    try:
        frame_settings(config)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"data.num_frames / data.max_side: {error}") from None
    launcher = config.get("accelerate_config")
    if launcher and not Path(launcher).is_file():
        raise ConfigError(f"accelerate_config: launcher file {launcher} not found")
    judge_stop_rule(config)
    eval_limit(config)
    evaluation_settings(config)
    peft_config(config)
    return {stage: stage_args(config, stage, folder, neutral_hardware)
            for stage, folder in stage_dirs.items()}


def missing_paths(config: dict, stages: Sequence[str] = STAGES, model: str | None = None
                  ) -> list[str]:
    """What the stages would read that is not here: the model folder (``--model``, or
    ``model`` when it is a path rather than a hub id or ``tiny:``), each stage's annotation
    file and the video folder; one line each, naming the key to set."""
    problems = []
    if model is not None:
        if not Path(model).is_dir():
            problems.append(f"--model {model}: model folder not found")
    elif not _model_found(str(config["model"])):
        problems.append(f"model {config['model']}: model folder not found "
                        "(set --set model=PATH, a local folder or a hub id)")
    data = config["data"]
    for stage in stages:
        key = DATA_KEYS[stage]
        if not data.get(key):
            problems.append(f"data.{key} is not set: set --set data.{key}=PATH")
        elif not Path(data[key]).is_file():
            problems.append(f"data.{key} file {data[key]} not found: set --set data.{key}=PATH")
    if data.get("video_dir") and not Path(data["video_dir"]).is_dir():
        problems.append(f"data.video_dir folder {data['video_dir']} not found: "
                        "set --set data.video_dir=PATH")
    if data.get("exclude") and not Path(data["exclude"]).is_file():
        problems.append(f"data.exclude filter file {data['exclude']} not found "
                        "(--exclude FILE)")
    return problems + missing_eval_paths(config)


def _model_found(spec: str) -> bool:
    """``tiny:`` and hub ids (``org/name``) are found later; a path must exist now."""
    if spec.startswith(TINY_PREFIX) or Path(spec).expanduser().exists():
        return True
    return not looks_like_path(spec)


def require_paths(config: dict, stages: Sequence[str] = STAGES, model: str | None = None
                  ) -> None:
    problems = missing_paths(config, stages, model)
    if problems:
        raise ConfigError("; ".join(problems))
