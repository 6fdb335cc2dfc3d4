"""Resuming a training stage: which checkpoint, whether the stage is already complete, and
the weights to start from; and the checkpoint saved when a run is stopped early.

Why a module of its own: transformers' Trainer gets several resume cases wrong for these
models (see :func:`starting_weights`, :func:`checkpoint_is_last`), and the rules are the
same for SFT and GRPO.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from .data import STAGES

RUN_INFO_FILE = "evads_training.json"


def resume_checkpoint(resume: bool | str | None, output_dir: Path) -> str | None:
    """The checkpoint folder to resume from: True -> the latest in ``output_dir`` (None when
    there is none); a path -> that folder."""
    if not resume:
        return None
    if resume is True:
        from transformers.trainer_utils import get_last_checkpoint

        return get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
    if not Path(resume).is_dir():
        raise FileNotFoundError(f"resume: checkpoint folder {resume} not found")
    return str(resume)


def stage_resumes(values: Sequence[bool | str] | None, stages: Sequence[str] = STAGES
                  ) -> dict[str, bool | str | None]:
    """Each stage's ``resume`` from the ``--resume`` values given for a command.

    Bare ``--resume`` (True): every stage from its own latest checkpoint. A single stage
    also takes one checkpoint path. Several stages (``rl``) take ``STAGE=CHECKPOINT`` per
    stage, the others resuming from their latest; one bare path for all is refused, since
    a checkpoint belongs to one stage."""
    if not values:
        return {stage: None for stage in stages}
    plan: dict[str, bool | str | None] = {stage: True for stage in stages}
    for value in values:
        if value is True:
            continue
        stage, sep, path = str(value).partition("=")
        if sep and stage in STAGES:
            if stage not in stages:
                raise ValueError(f"--resume {value}: this command runs {list(stages)}, "
                                 f"not {stage}")
        elif len(stages) == 1:
            stage, path = stages[0], str(value)
        else:
            raise ValueError(
                f"--resume {value}: {' and '.join(stages)} each have their own checkpoints; "
                "give --resume alone (each stage from its latest checkpoint) or per stage: "
                + " ".join(f"--resume {s}=CHECKPOINT" for s in stages))
        if not Path(path).is_dir():
            raise ValueError(f"--resume {value}: checkpoint folder {path} not found")
        plan[stage] = path
    return plan


def starting_weights(model: str, checkpoint: str | None, config: dict) -> str:
    """Where a stage loads its weights from: the checkpoint itself when resuming a full
    fine-tune. The Trainer reloads checkpoints with ``load_state_dict(strict=False)`` and
    no key renaming, but Qwen2-VL / Qwen2.5-VL checkpoints are saved in the renamed
    (legacy) key layout, so that reload silently restores nothing (transformers 5.17; it
    logs missing/unexpected keys). ``from_pretrained(checkpoint)`` renames them right; the
    Trainer still restores optimizer, scheduler, RNG and step. LoRA adapters reload fine."""
    return checkpoint if checkpoint and not config.get("peft") else model


def _trainer_state(checkpoint: str | os.PathLike) -> dict:
    path = Path(checkpoint) / "trainer_state.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _target_step(args, recorded: int | None) -> int | None:
    """The step a stage ends at: ``max_steps`` when set, else what the run recorded (the
    Trainer's count from ``num_train_epochs``)."""
    return args.max_steps if args.max_steps > 0 else recorded


def finished_final(output_dir: Path, checkpoint: str | None, args) -> Path | None:
    """``final/`` of a stage that already reached its last step, with no later checkpoint
    beside it: a resume of it has nothing to train."""
    final = output_dir / "final"
    info_file = final / RUN_INFO_FILE
    if not info_file.is_file():
        return None
    info = json.loads(info_file.read_text(encoding="utf-8"))
    step, target = info.get("global_step", 0), _target_step(args, info.get("max_steps"))
    if checkpoint and _trainer_state(checkpoint).get("global_step", 0) > step:
        return None
    return final if target is not None and step >= target else None


def checkpoint_is_last(checkpoint: str | None, args) -> bool:
    """True when ``checkpoint`` was saved at the stage's last step. The Trainer would still
    train one step from it (transformers 5.17 checks ``max_steps`` only after a step)."""
    if not checkpoint:
        return False
    state = _trainer_state(checkpoint)
    target = _target_step(args, state.get("max_steps"))
    return target is not None and state.get("global_step", 0) >= target


class _ExpectedReloadWarnings(logging.Filter):
    """Drops the Trainer's missing/unexpected-key warnings of its checkpoint reload, which are
    expected when ``starting_weights`` already loaded the checkpoint with from_pretrained."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(
            ("There were missing keys in the checkpoint model loaded",
             "There were unexpected keys in the checkpoint model loaded"))


@contextlib.contextmanager
def _checkpoint_reload_quiet(stage: str, checkpoint: str | None, config: dict):
    if not checkpoint or config.get("peft"):
        yield
        return
    print(f"[{stage}] resume: weights restored from {checkpoint} via from_pretrained; the "
          "Trainer's own reload of it cannot map the Qwen-VL key names and its missing/"
          "unexpected-key warnings are expected, so they are not shown", flush=True)
    trainer_log = logging.getLogger("transformers.trainer")
    quiet = _ExpectedReloadWarnings()
    trainer_log.addFilter(quiet)
    try:
        yield
    finally:
        trainer_log.removeFilter(quiet)


def restore_adapter(model, checkpoint: str) -> None:
    """Load the LoRA adapter a Trainer saved in ``checkpoint`` into ``model`` (a
    ``PeftModel``) as its active adapter, trainable, through peft's public ``load_adapter``
    (what the Trainer's own checkpoint reload does for a single adapter)."""
    model.load_adapter(checkpoint, adapter_name=model.active_adapter, is_trainable=True)


def train_or_restore(trainer, stage: str, checkpoint: str | None, config: dict) -> None:
    """Train (resuming from ``checkpoint``), or, when the checkpoint is the stage's last step
    and only ``final/`` is missing, restore it without training another step."""
    if checkpoint_is_last(checkpoint, trainer.args):
        from transformers import TrainerState

        trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
        if config.get("peft"):  # the full model was loaded from the checkpoint already
            restore_adapter(trainer.model, checkpoint)
        print(f"[{stage}] already complete at {checkpoint} (step {trainer.state.global_step});"
              " saving final/ from it, nothing trained", flush=True)
        return
    with _checkpoint_reload_quiet(stage, checkpoint, config):
        trainer.train(resume_from_checkpoint=checkpoint)


def save_stopped_checkpoint(trainer) -> Path:
    """Save a checkpoint of the last finished step of a run stopped in the middle of a step
    (weights, optimizer, scheduler, RNG, trainer state), so that ``--resume`` continues from
    it. Every process takes part, as in the Trainer's own saves."""
    trainer._save_checkpoint(trainer.model, trial=None)
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    return Path(trainer.args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{trainer.state.global_step}"
