"""The two E-VAds-R1 training stages on TRL: SFT (SFTTrainer), then MG-GRPO (GRPOTrainer).

Each stage reads its annotation file, samples frames from the videos
(:mod:`evads_rl.data`), trains with the TRL config of the run config's ``sft`` /
``grpo`` section, checkpoints every ``save_steps`` into ``<output_dir>/<stage>``
(resume with ``resume=True`` for the latest checkpoint, or a checkpoint path),
logs each step to ``<output_dir>/<stage>/metrics.jsonl``, and saves the final
model and processor to ``<output_dir>/<stage>/final`` (with LoRA: the adapter in
``final/adapter`` and the merged full model in ``final``, so the next stage and
evaluation load ``final`` as an ordinary model). ``final/evads_training.json`` says
what produced it (stage, starting model, judge, LoRA). ``run_rl`` chains them: GRPO
starts from the SFT output. GRPO stops on a dead judge (:mod:`evads_rl.judge_guard`) with
a checkpoint and no ``final/``.

The checks of a run's settings live in :mod:`evads_rl.settings`, the resume rules in
:mod:`evads_rl.resume`, the judge factory in :mod:`evads_rl.judging`; this module runs the
stages.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from evads_tasks.sample.tiny_model import NOTICE_FILE, ensure_tiny_vlm, is_tiny_random

from .callbacks import StepLogCallback
from .data import build_dataset
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


def _resume_point(stage: str, resume: bool | str | None, output_dir: Path, args
                  ) -> tuple[str | None, StageResult | None]:
    """The checkpoint to resume from, or the stage's result when it is already complete."""
    checkpoint = resume_checkpoint(resume, output_dir)
    if not resume:
        return None, None
    final = finished_final(output_dir, checkpoint, args)
    if final is not None:
        step = json.loads((final / RUN_INFO_FILE).read_text(encoding="utf-8"))["global_step"]
        print(f"[{stage}] already complete (step {step}): reusing {final}, nothing trained",
              flush=True)
        return checkpoint, StageResult(None, final)
    if checkpoint is None:
        print(f"[{stage}] resume: no checkpoint-* in {output_dir}, starting this stage fresh",
              flush=True)
    return checkpoint, None


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


def _prepare_stage(stage: str, config: dict, output_dir: Path, resume: bool | str | None,
                   model: str | None):
    """Settings and paths checked before any work, then the resume point, the model and the
    dataset; a finished stage's :class:`StageResult` instead when there is nothing to train."""
    args = check_settings(config, {stage: output_dir})[stage]
    require_paths(config, (stage,), model)
    checkpoint, done = _resume_point(stage, resume, output_dir, args)
    if done:
        return done
    model = model or resolve_model(config["model"])
    data = config["data"]
    dataset = build_dataset(data[DATA_KEYS[stage]], stage, data.get("video_dir"),
                            frame_settings(config), data.get("limit"), data.get("exclude"))
    return args, checkpoint, model, model_notice(model), dataset


def run_sft(config: dict, output_dir: str | os.PathLike, resume: bool | str | None = None,
            model: str | None = None) -> StageResult:
    """SFT on the SFT split: format and e-commerce knowledge."""
    from trl import SFTTrainer

    output_dir = Path(output_dir)
    stage = _prepare_stage("sft", config, output_dir, resume, model)
    if isinstance(stage, StageResult):
        return stage
    args, checkpoint, model, notice, dataset = stage
    if notice:
        print(f"[sft] model: {notice}", flush=True)
    trainer = SFTTrainer(model=starting_weights(model, checkpoint, config),
                         args=args, train_dataset=dataset, peft_config=peft_config(config),
                         callbacks=[StepLogCallback(output_dir, "sft", notice)])
    train_or_restore(trainer, "sft", checkpoint, config)
    final = _finish(trainer, output_dir, model, {"stage": "sft", "judge": None,
                                                  **_data_note(config, dataset)})
    return StageResult(trainer, final)


def run_grpo(config: dict, output_dir: str | os.PathLike, resume: bool | str | None = None,
             model: str | None = None, judge=None) -> StageResult:
    """MG-GRPO on the RL split; ``model`` defaults to the config's (else the SFT output)."""
    from trl import GRPOTrainer

    output_dir = Path(output_dir)
    stage = _prepare_stage("grpo", config, output_dir, resume, model)
    if isinstance(stage, StageResult):
        return stage
    args, checkpoint, model, notice, dataset = stage
    judge = judge or make_judge(config.get("judge", "env"))
    print(f"[grpo] model: {notice or model}; judge: {judge.name}", flush=True)
    weights = RewardWeights(*args.reward_weights)
    guard = JudgeErrorWindow(judge_stop_rule(config))
    rewards = MGGRPORewards(MGJudgeScorer(judge, weights, guard, _sum_over_processes))
    trainer = GRPOTrainer(model=starting_weights(model, checkpoint, config),
                          reward_funcs=rewards.functions(), args=args,
                          train_dataset=dataset, peft_config=peft_config(config),
                          callbacks=[StepLogCallback(output_dir, "grpo", notice, judge.name)])
    try:
        train_or_restore(trainer, "grpo", checkpoint, config)
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
    final = _finish(trainer, output_dir, model, {"stage": "grpo", "judge": judge.name,
                                                  **_data_note(config, dataset)})
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


def run_rl(config: dict, resume: bool | Mapping[str, bool | str | None] | None = None
           ) -> tuple[StageResult, StageResult]:
    """E-VAds-R1 training: SFT, then GRPO from the SFT model.

    ``resume``: True resumes each stage from its latest checkpoint; a mapping gives each
    stage its own (``{"sft": True, "grpo": "runs/x/grpo/checkpoint-50"}``)."""
    if not isinstance(resume, Mapping):
        resume = stage_resumes([True] if resume else None)
    root = Path(config["output_dir"])
    sft = run_sft(config, root / "sft", resume=resume.get("sft"))
    grpo = run_grpo(config, root / "grpo", resume=resume.get("grpo"), model=str(sft.final_dir))
    return sft, grpo
