"""Training run configuration: one YAML file per hardware setup (``evads_rl/configs``).

Top-level keys: ``model`` (a local folder, a hub id, or ``tiny:<family>`` for the
offline tiny random model), ``data`` (annotation files, video folder, frame
settings, row limit, ``exclude``: a filter file of question ids to leave out; ``eval``: a
held-out evaluation file, which turns on validation during training and the before/after
scoring, with ``eval_video_dir``, ``eval_limit`` and ``allow_overlap``), ``judge`` (``env``
or ``similarity``), ``reward_weights``,
``peft`` (LoRA settings or null), ``sft`` / ``grpo`` (keyword arguments of TRL's
``SFTConfig`` / ``GRPOConfig``), ``output_dir``, optionally ``accelerate_config``
(a launcher config; the stages then run under ``accelerate launch``), ``judge_stop``
(``max_error_rate``, ``batches``: when GRPO stops on a dead judge, default 1.0 and 2) and
``evaluation`` (how lmms-eval runs the models for the before/after: ``model``,
``model_args``, ``gen_kwargs``, ``prompt``; see :mod:`evads_rl.before_after`).
Strings may use ``$VARS``; relative paths are relative to the working directory.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import yaml

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
SECTIONS = ("model", "data", "judge", "reward_weights", "peft", "sft", "grpo", "output_dir",
            "accelerate_config", "judge_stop", "evaluation")
REQUIRED = ("model", "data", "sft", "grpo", "output_dir")
# The keys of the sections evads reads itself (sft/grpo/peft are checked against TRL/peft).
SECTION_KEYS = {
    "data": ("sft", "rl", "video_dir", "num_frames", "max_side", "limit", "exclude",
             "eval", "eval_video_dir", "eval_limit", "allow_overlap"),  # eval*: evads_rl.heldout
    "reward_weights": ("answer", "trace", "format"),
    "judge_stop": ("max_error_rate", "batches"),  # evads_rl.judge_guard
    "evaluation": ("model", "model_args", "gen_kwargs", "prompt"),  # evads_rl.before_after
}
LAUNCHER_PREFIX = "accelerate_"  # launcher files beside the run configs, not run configs


class ConfigError(ValueError):
    """A user mistake in the run config or its overrides: shown as one line, no traceback."""


def training_configs() -> list[str]:
    """The names of the shipped run configs (not the accelerate launcher files)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")
                  if not p.stem.startswith(LAUNCHER_PREFIX))


def config_path(name: str | os.PathLike) -> Path:
    """A config file by path, or by name among the shipped ones (``cpu_smoke``)."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = CONFIG_DIR / f"{Path(name).stem}.yaml"
    if shipped.is_file() and not shipped.stem.startswith(LAUNCHER_PREFIX):
        return shipped
    raise FileNotFoundError(f"config {name!s} not found: give a YAML path or one of "
                            f"{', '.join(training_configs())}")


def _check_section_keys(config: dict, where: str) -> None:
    for section, valid in SECTION_KEYS.items():
        values = config.get(section)
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: {section} must be a mapping of {', '.join(valid)}")
        for key in values:
            if key not in valid:
                raise ConfigError(f"{where}: {section}.{key} is not a setting; {section} takes "
                                  f"{', '.join(valid)}")


def _expand(value):
    if isinstance(value, str):
        return os.path.expandvars(value)
    if isinstance(value, dict):
        return {key: _expand(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand(item) for item in value]
    return value


def apply_override(config: dict, assignment: str) -> dict:
    """``a.b=value`` (value parsed as YAML) set in a copy of ``config``."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} must look like section.key=value")
    dotted, raw = assignment.split("=", 1)
    keys = dotted.strip().split(".")
    if keys[0] not in SECTIONS:
        raise ConfigError(f"--set {assignment}: unknown section {keys[0]!r} "
                          f"(one of {', '.join(SECTIONS)})")
    result = copy.deepcopy(config)
    node = result
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[keys[-1]] = yaml.safe_load(raw)
    if len(keys) > 1 and keys[1] not in SECTION_KEYS.get(keys[0], (keys[1],)):
        raise ConfigError(f"--set {assignment}: {dotted} is not a setting; {keys[0]} takes "
                          f"{', '.join(SECTION_KEYS[keys[0]])}")
    return result


def load_config(name: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """The run config, validated for its top-level keys, with ``$VARS`` expanded."""
    path = config_path(name)
    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    for assignment in overrides:
        config = apply_override(config, assignment)
    unknown = set(config) - set(SECTIONS)
    missing = [key for key in REQUIRED if key not in config]
    if unknown or missing:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}, missing key(s) {missing}")
    _check_section_keys(config, str(path))
    config = _expand(config)
    unset = sorted(set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", yaml.safe_dump(config))))
    if unset:
        raise ConfigError(f"{path}: environment variable(s) {unset} used by the config are not set")
    config["_source"] = str(path)
    return config
