"""The held-out evaluation set of a run (``data.eval``) and the guard against training on it.

Why a guard: the published splits share no video (test 3,389, SFT 376, RL 196), and a model
scored on its own training videos would look better than it is. So before anything trains
or is scored, the evaluation file is checked against the training files (``data.sft``,
``data.rl``) for shared videos and question ids
(:mod:`evads_tasks.core.annotations.overlap`); any overlap stops the run with exit 2 naming
the count and the first ids, unless ``data.allow_overlap: true``, and then every report of
the run says so in its first line (:attr:`HeldOut.warning`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from evads_tasks.core.annotations import EvadsRecord, load_annotations
from evads_tasks.core.annotations.overlap import Overlap, find_overlaps

from .config import ConfigError

EVAL_KEY = "eval"
TRAINING_KEYS = ("sft", "rl")  # the data keys of the training files
ALLOW_SETTING = "data.allow_overlap"


class OverlapError(ConfigError):
    """The evaluation file shares videos or questions with a training file (exit 2)."""


@dataclass(frozen=True)
class HeldOut:
    """The result of the guard: what the evaluation file shares, and the setting that allowed
    it (empty: nothing shared)."""

    overlaps: tuple[Overlap, ...] = ()
    allowed_by: str = ""

    @property
    def warning(self) -> str | None:
        """The first line of every report of a run allowed to overlap; None when held out."""
        if not self.overlaps:
            return None
        return (f"NOT HELD OUT ({self.allowed_by}): "
                + "; ".join(o.describe() for o in self.overlaps)
                + ". Scores on these questions do not measure held-out performance.")


def guard_overlap(evaluation: str, evaluation_name: str, training: Mapping[str, str],
                  allowed: bool, allow_with: str) -> HeldOut:
    """The evaluation file against each training file (``{name: path}``): OverlapError on an
    overlap unless ``allowed`` (``allow_with`` names the setting that allows it)."""
    overlaps = tuple(find_overlaps(load_annotations(evaluation), evaluation_name,
                                   {name: load_annotations(path)
                                    for name, path in training.items()}))
    if overlaps and not allowed:
        raise OverlapError(
            "; ".join(o.describe() for o in overlaps)
            + ": scores on it would not be held out (the published splits share no video). "
            f"Use an evaluation file without them, or {allow_with} to go on (every report "
            "then says so)")
    return HeldOut(overlaps, allow_with if overlaps else "")


def eval_file(config: dict) -> str | None:
    """``data.eval``, the held-out evaluation file (None: no validation, no before/after)."""
    value = config["data"].get(EVAL_KEY)
    return str(value) if value else None


def eval_video_dir(config: dict) -> str | None:
    """Where the evaluation videos are: ``data.eval_video_dir``, else ``data.video_dir``."""
    data = config["data"]
    return data.get("eval_video_dir") or data.get("video_dir")


def eval_limit(config: dict) -> int | None:
    """``data.eval_limit``: how many questions of ``data.eval`` (the first, in file order)
    validation and the before/after use; None: all."""
    limit = config["data"].get("eval_limit")
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"data.eval_limit must be a whole number of questions >= 1, "
                          f"got {limit!r}")
    return limit


def eval_records(config: dict, limit: int | None = None) -> list[EvadsRecord]:
    """The questions of ``data.eval`` that are scored: the first ``limit`` (default
    ``data.eval_limit``), in file order."""
    path = eval_file(config)
    if path is None:
        raise ConfigError("data.eval is not set: set --set data.eval=PATH (a held-out "
                          "annotation file, e.g. a slice of the test split)")
    return load_annotations(path)[:limit or eval_limit(config)]


def missing_eval_paths(config: dict) -> list[str]:
    """What ``data.eval`` names that is not here (one line each, naming the key to set)."""
    problems = []
    path = eval_file(config)
    if path is not None and not Path(path).is_file():
        problems.append(f"data.eval file {path} not found: set --set data.eval=PATH")
    folder = config["data"].get("eval_video_dir")
    if path is not None and folder and not Path(folder).is_dir():
        problems.append(f"data.eval_video_dir folder {folder} not found: set "
                        "--set data.eval_video_dir=PATH")
    return problems


def check_heldout(config: dict) -> HeldOut:
    """The guard (see the module docstring): OverlapError on an overlap not allowed.

    Every training file that is set and present is checked (a model trained by ``grpo``
    alone may start from an SFT model of ``data.sft``), against the whole evaluation file."""
    path = eval_file(config)
    if path is None:
        return HeldOut()
    allowed = config["data"].get("allow_overlap", False)
    if not isinstance(allowed, bool):
        raise ConfigError(f"{ALLOW_SETTING} must be true or false, got {allowed!r}")
    data = config["data"]
    training = {f"data.{key} {data[key]}": str(data[key]) for key in TRAINING_KEYS
                if data.get(key) and os.path.isfile(data[key])}
    return guard_overlap(path, f"data.eval {path}", training, allowed,
                         f"--set {ALLOW_SETTING}=true")
