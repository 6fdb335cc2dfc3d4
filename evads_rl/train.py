"""The two E-VAds-R1 training stages on TRL: SFT (SFTTrainer), then MG-GRPO (GRPOTrainer).

Each stage reads its annotation file, samples frames from the videos
(:mod:`evads_rl.data`), trains with the TRL config of the run config's ``sft`` /
``grpo`` section, checkpoints every ``save_steps`` into ``<output_dir>/<stage>``
(resume with ``resume=True`` for the latest checkpoint, or a checkpoint path),
logs each step to ``<output_dir>/<stage>/metrics.jsonl``, and saves the final
model and processor to ``<output_dir>/<stage>/final`` (with LoRA: the adapter in
``final/adapter`` and the merged full model in ``final``, so the next stage and
evaluation load ``final`` as an ordinary model). ``final/evads_training.json`` says
what produced it (stage, starting model, judge, LoRA, a digest of its settings). ``run_rl``
chains them: GRPO starts from the SFT output. GRPO stops on a dead judge
(:mod:`evads_rl.judge_guard`) with a checkpoint and no ``final/``. A stage whose ``final/``
was made with the same settings is not trained again (``fresh=True`` trains it anyway).

With ``data.eval`` (:mod:`evads_rl.heldout`) the evaluation file is first checked against the
training files, then each stage validates on it through TRL's own evaluation loop (before the
first step, every ``eval_steps`` and at the end; GRPO with the MG reward, SFT with its loss),
per task and overall in ``metrics.jsonl`` (:mod:`evads_rl.callbacks`).

The checks of a run's settings live in :mod:`evads_rl.settings`, the resume rules in
:mod:`evads_rl.resume`, the judge factory in :mod:`evads_rl.judging`; this module runs the
stages.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from evads_tasks.sample.tiny_model import NOTICE_FILE, ensure_tiny_vlm, is_tiny_random

from .callbacks import StepLogCallback
from .data import build_dataset, build_task_datasets
from .heldout import HeldOut, check_heldout, eval_file, eval_limit, eval_video_dir
from .judge_guard import JudgeErrorWindow, JudgeFailureError
from .judging import MGGRPORewards, MGJudgeScorer, make_judge
from .resume import (
    RUN_INFO_FILE,
    finished_final,
    resume_checkpoint,
    save_stopped_checkpoint,
    stage_resumes,
    starting_weights,
    train_or_restore,
)
from .rewards import RewardWeights
from .settings import (
    DATA_KEYS,
    TINY_PREFIX,
    check_settings,
    frame_settings,
    judge_stop_rule,
    peft_config,
    require_paths,
)

ADAPTER_DIR = "adapter"
# TRL settings of validation only (they do not change the trained model).
VALIDATION_KEYS = ("eval_", "per_device_eval_batch_size", "num_generations_eval")


@dataclass
class StageResult:
    trainer: object | None  # the TRL trainer (tests, notebooks); None: a finished stage reused
    final_dir: Path
    rewards: MGGRPORewards | None = None


def resolve_model(spec: str) -> str:
    """``tiny:<family>`` -> the offline tiny random model (built once); else the path / hub id."""
    if spec.startswith(TINY_PREFIX):
        return str(ensure_tiny_vlm(spec[len(TINY_PREFIX):]))
    return spec


def model_notice(model: str) -> str | None:
    """The tiny-model warning to print and log next to every number it produced."""
    if Path(model).is_dir() and is_tiny_random(model):
        return (Path(model) / NOTICE_FILE).read_text(encoding="utf-8").splitlines()[0].lstrip("# ")
    return None


def _resume_point(stage: str, resume: bool | str | None, output_dir: Path, args,
                  settings: str, fresh: bool = False
                  ) -> tuple[str | None, StageResult | None]:
    """The checkpoint to resume from, or the stage's result when it is already complete:
    resumed to its last step, or (not resuming) a ``final/`` made with the same ``settings``
    digest, unless ``fresh``."""
    checkpoint = resume_checkpoint(resume, output_dir)
    if not resume:
        final = None if fresh else finished_final(output_dir, None, args)
        if final is not None and _run_info(final).get("settings") == settings:
            print(f"[{stage}] already complete (step {_run_info(final)['global_step']}) with "
                  f"these settings: reusing {final}, nothing trained (--fresh trains it "
                  "again)", flush=True)
            return None, StageResult(None, final)
        return None, None
    final = finished_final(output_dir, checkpoint, args)
    if final is not None:
        print(f"[{stage}] already complete (step {_run_info(final)['global_step']}): reusing "
              f"{final}, nothing trained", flush=True)
        return checkpoint, StageResult(None, final)
    if checkpoint is None:
        print(f"[{stage}] resume: no checkpoint-* in {output_dir}, starting this stage fresh",
              flush=True)
    return checkpoint, None


def _run_info(final: Path) -> dict:
    return json.loads((final / RUN_INFO_FILE).read_text(encoding="utf-8"))


def stage_settings(config: dict, stage: str, model: str | None) -> str:
    """A digest of what a stage's training depends on: its starting model, its data file
    (contents), frames, row limit, TRL section, LoRA, and for GRPO the reward weights and
    judge mode. Validation settings are left out (they do not change the model)."""
    data = config["data"]
    source = Path(data[DATA_KEYS[stage]])
    facts = {"stage": stage, "model": model or config["model"],
             "data": hashlib.sha256(source.read_bytes()).hexdigest() if source.is_file()
             else str(source),
             "frames": [data.get("num_frames"), data.get("max_side")], "limit": data.get("limit"),
             "trl": {key: value for key, value in config[stage].items()
                     if not key.startswith(VALIDATION_KEYS)},
             "peft": config.get("peft")}
    if stage == "grpo":
        facts.update(reward_weights=config.get("reward_weights"), judge=config.get("judge"))
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()


def _finish(trainer, output_dir: Path, model: str, info: Mapping) -> Path:
    """Save the final model into ``output_dir/final``, with the processor and a run note.

    With LoRA the trainer's model is a ``PeftModel``: the adapter goes to
    ``final/adapter`` and the merged full model (``merge_and_unload``, in place: the
    trainer's model is not used after this) to ``final``. Every rank takes part in
    ``save_model`` (ZeRO-3 gathers weights there); only the main process writes the rest."""
    from peft import PeftModel

    final = output_dir / "final"
    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    lora = isinstance(unwrapped, PeftModel)
    trainer.save_model(str(final / ADAPTER_DIR if lora else final))
    if trainer.is_world_process_zero():
        if lora:
            unwrapped.merge_and_unload().save_pretrained(str(final))
        if trainer.processing_class is not None:
            trainer.processing_class.save_pretrained(str(final))
        if is_tiny_random(model):  # the copy is just as random: keep the warning with it
            shutil.copy(Path(model) / NOTICE_FILE, final / NOTICE_FILE)
        note = {**info, "start_model": model, "global_step": trainer.state.global_step,
                "max_steps": trainer.state.max_steps,
                "lora_adapter": str(final / ADAPTER_DIR) if lora else None,
                "model_notice": model_notice(model)}
        (final / RUN_INFO_FILE).write_text(json.dumps(note, ensure_ascii=False, indent=2) + "\n",
                                           encoding="utf-8")
    trainer.accelerator.wait_for_everyone()
    return final


@dataclass
class PreparedStage:
    """What a stage trains with, all checked before the first step."""

    args: object  # TRL's SFTConfig / GRPOConfig
    checkpoint: str | None
    model: str
    notice: str | None
    dataset: object  # datasets.Dataset
    eval_sets: dict  # {task: datasets.Dataset}; empty: no validation
    heldout: HeldOut
    settings: str  # stage_settings digest


def _prepare_stage(stage: str, config: dict, output_dir: Path, resume: bool | str | None,
                   model: str | None, fresh: bool = False) -> PreparedStage | StageResult:
    """Settings, paths and the held-out guard checked before any work, then the resume point,
    the model, the dataset and the validation sets; a finished stage's :class:`StageResult`
    instead when there is nothing to train."""
    args = check_settings(config, {stage: output_dir})[stage]
    require_paths(config, (stage,), model)
    heldout = check_heldout(config)
    if heldout.warning:
        print(f"[{stage}] WARNING: {heldout.warning}", flush=True)
    settings = stage_settings(config, stage, model)
    checkpoint, done = _resume_point(stage, resume, output_dir, args, settings, fresh)
    if done:
        return done
    model = model or resolve_model(config["model"])
    data, frames = config["data"], frame_settings(config)
    dataset = build_dataset(data[DATA_KEYS[stage]], stage, data.get("video_dir"), frames,
                            data.get("limit"), data.get("exclude"))
    eval_sets = {}
    if eval_file(config) and args.eval_strategy != "no":
        eval_sets = build_task_datasets(eval_file(config), stage, eval_video_dir(config),
                                        frames, eval_limit(config))
    return PreparedStage(args, checkpoint, model, model_notice(model), dataset, eval_sets,
                         heldout, settings)


def _log_callback(output_dir: Path, stage: str, prepared: PreparedStage,
                  judge: str | None = None) -> StepLogCallback:
    return StepLogCallback(output_dir, stage, prepared.notice, judge,
                           {task: len(rows) for task, rows in prepared.eval_sets.items()},
                           prepared.heldout.warning)


def _train(trainer, stage: str, prepared: PreparedStage, log: StepLogCallback,
           config: dict) -> None:
    """Train (or restore), then validate the final model unless the last evaluation was at
    the last step (TRL's own ``evaluate``)."""
    train_or_restore(trainer, stage, prepared.checkpoint, config)
    if prepared.eval_sets and log.last_eval_step != trainer.state.global_step:
        trainer.evaluate()


def _stage_info(stage: str, prepared: PreparedStage, judge: str | None,
                config: dict) -> dict:
    return {"stage": stage, "judge": judge, "settings": prepared.settings,
            "heldout_warning": prepared.heldout.warning,
            **_data_note(config, prepared.dataset)}


def run_sft(config: dict, output_dir: str | os.PathLike, resume: bool | str | None = None,
            model: str | None = None, fresh: bool = False) -> StageResult:
    """SFT on the SFT split: format and e-commerce knowledge."""
    from trl import SFTTrainer

    output_dir = Path(output_dir)
    stage = _prepare_stage("sft", config, output_dir, resume, model, fresh)
    if isinstance(stage, StageResult):
        return stage
    if stage.notice:
        print(f"[sft] model: {stage.notice}", flush=True)
    log = _log_callback(output_dir, "sft", stage)
    trainer = SFTTrainer(model=starting_weights(stage.model, stage.checkpoint, config),
                         args=stage.args, train_dataset=stage.dataset,
                         eval_dataset=stage.eval_sets or None, peft_config=peft_config(config),
                         callbacks=[log])
    _train(trainer, "sft", stage, log, config)
    final = _finish(trainer, output_dir, stage.model, _stage_info("sft", stage, None, config))
    return StageResult(trainer, final)


def run_grpo(config: dict, output_dir: str | os.PathLike, resume: bool | str | None = None,
             model: str | None = None, judge=None, fresh: bool = False) -> StageResult:
    """MG-GRPO on the RL split; ``model`` defaults to the config's (else the SFT output).
    Validation scores ``data.eval`` with the same MG reward and judge."""
    from trl import GRPOTrainer

    output_dir = Path(output_dir)
    stage = _prepare_stage("grpo", config, output_dir, resume, model, fresh)
    if isinstance(stage, StageResult):
        return stage
    judge = judge or make_judge(config.get("judge", "env"))
    print(f"[grpo] model: {stage.notice or stage.model}; judge: {judge.name}", flush=True)
    weights = RewardWeights(*stage.args.reward_weights)
    guard = JudgeErrorWindow(judge_stop_rule(config))
    rewards = MGGRPORewards(MGJudgeScorer(judge, weights, guard, _sum_over_processes))
    log = _log_callback(output_dir, "grpo", stage, judge.name)
    trainer = GRPOTrainer(model=starting_weights(stage.model, stage.checkpoint, config),
                          reward_funcs=rewards.functions(), args=stage.args,
                          train_dataset=stage.dataset, eval_dataset=stage.eval_sets or None,
                          peft_config=peft_config(config), callbacks=[log])
    try:
        _train(trainer, "grpo", stage, log, config)
    except JudgeFailureError as error:
        # Raised while scoring a batch, before its update: the model is the last step's.
        for callback in trainer.callback_handler.callbacks:  # the error must be the last line
            if getattr(callback, "training_bar", None) is not None:
                callback.training_bar.close()
                callback.training_bar = None
        saved = save_stopped_checkpoint(trainer)
        stopped = JudgeFailureError(f"{error}. Training stopped at step "
                                    f"{trainer.state.global_step}, checkpoint saved to {saved} "
                                    "(no final/); fix the judge and rerun with --resume")
        stopped.checkpoint = str(saved)
        raise stopped from None
    stats = rewards.scorer.stats
    print(f"[grpo] judge requests {stats.requests}, judge errors {stats.errors} "
          f"({judge.name})", flush=True)
    final = _finish(trainer, output_dir, stage.model,
                    _stage_info("grpo", stage, judge.name, config))
    return StageResult(trainer, final, rewards)


def _data_note(config: dict, dataset) -> dict:
    """What the stage trained on, for its run note: the rows, and the filter file that left
    questions out (``--exclude``), if any."""
    return {"rows": len(dataset), "exclude": config["data"].get("exclude")}


def _sum_over_processes(requests: int, errors: int) -> tuple[int, int]:
    """A reward batch's judge counts summed over the training processes, so that all of them
    stop together on a dead judge (one process, or none initialised: the counts as they are).
    Every process scores every reward batch, so the collective calls pair up."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return requests, errors
    import torch

    device = "cuda" if torch.cuda.is_available() and dist.get_backend() == "nccl" else "cpu"
    counts = torch.tensor([requests, errors], dtype=torch.long, device=device)
    dist.all_reduce(counts)
    return int(counts[0]), int(counts[1])


def run_rl(config: dict, resume: bool | Mapping[str, bool | str | None] | None = None,
           fresh: bool = False) -> tuple[StageResult, StageResult]:
    """E-VAds-R1 training: SFT, then GRPO from the SFT model.

    ``resume``: True resumes each stage from its latest checkpoint; a mapping gives each
    stage its own (``{"sft": True, "grpo": "runs/x/grpo/checkpoint-50"}``)."""
    if not isinstance(resume, Mapping):
        resume = stage_resumes([True] if resume else None)
    root = Path(config["output_dir"])
    sft = run_sft(config, root / "sft", resume=resume.get("sft"), fresh=fresh)
    grpo = run_grpo(config, root / "grpo", resume=resume.get("grpo"), model=str(sft.final_dir),
                    fresh=fresh)
    return sft, grpo
