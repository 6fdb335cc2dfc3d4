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
starts from the SFT output.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from evads_tasks.tiny_model import NOTICE_FILE, ensure_tiny_vlm, is_tiny_random

from .callbacks import StepLogCallback
from .data import FrameSettings, build_dataset
from .judging import MGGRPORewards, MGJudgeScorer
from .rewards import RewardWeights

log = logging.getLogger(__name__)
TINY_PREFIX = "tiny:"
STAGES = ("sft", "grpo")
ADAPTER_DIR = "adapter"
RUN_INFO_FILE = "evads_training.json"


@dataclass
class StageResult:
    trainer: object  # the TRL trainer, kept for inspection (tests, notebooks)
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


def make_judge(mode: str = "env", cache_dir: str | os.PathLike | None = None):
    """``similarity``: the offline fallback judge unless a judge URL is configured in the
    environment (a real judge always wins); ``env``: whatever ``judge_from_env`` finds."""
    if mode not in ("env", "similarity"):
        raise ValueError(f"judge must be 'env' or 'similarity', got {mode!r}")
    if mode == "similarity" and not os.environ.get("EVADS_JUDGE_BASE_URL"):
        from evads_tasks.judge.similarity import SimilarityJudge

        return SimilarityJudge()
    from evads_tasks.judge import judge_from_env

    return judge_from_env(cache_dir)


def frame_settings(config: dict) -> FrameSettings:
    data = config["data"]
    return FrameSettings(num_frames=int(data.get("num_frames", 4)),
                         max_side=int(data.get("max_side", 224)))


def peft_config(config: dict):
    if not config.get("peft"):
        return None
    from peft import LoraConfig

    return LoraConfig(**config["peft"])


def sft_args(config: dict, output_dir: str | os.PathLike):
    from trl import SFTConfig

    return SFTConfig(output_dir=str(output_dir), **config["sft"])


def grpo_args(config: dict, output_dir: str | os.PathLike):
    from trl import GRPOConfig

    weights = RewardWeights.from_mapping(config.get("reward_weights"))
    return GRPOConfig(output_dir=str(output_dir), reward_weights=weights.as_list(),
                      **config["grpo"])


def resume_checkpoint(resume: bool | str | None, output_dir: Path) -> str | None:
    """The checkpoint folder to resume from: True -> the latest in ``output_dir`` (a fresh
    start, said so, when there is none); a path -> that folder."""
    if not resume:
        return None
    if resume is True:
        from transformers.trainer_utils import get_last_checkpoint

        latest = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
        if latest is None:
            print(f"resume: no checkpoint-* in {output_dir}, starting this stage fresh",
                  flush=True)
        return latest
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
    (legacy) key layout, so that reload silently restores nothing (transformers 5.23; it
    logs missing/unexpected keys). ``from_pretrained(checkpoint)`` renames them right; the
    Trainer still restores optimizer, scheduler, RNG and step. LoRA adapters reload fine."""
    return checkpoint if checkpoint and not config.get("peft") else model


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
                "lora_adapter": str(final / ADAPTER_DIR) if lora else None,
                "model_notice": model_notice(model)}
        (final / RUN_INFO_FILE).write_text(json.dumps(note, ensure_ascii=False, indent=2) + "\n",
                                           encoding="utf-8")
    trainer.accelerator.wait_for_everyone()
    return final


def run_sft(config: dict, output_dir: str | os.PathLike, resume: bool | str | None = None,
            model: str | None = None) -> StageResult:
    """SFT on the SFT split: format and e-commerce knowledge."""
    from trl import SFTTrainer

    output_dir = Path(output_dir)
    model = model or resolve_model(config["model"])
    notice = model_notice(model)
    if notice:
        print(f"[sft] model: {notice}", flush=True)
    data = config["data"]
    dataset = build_dataset(data["sft"], "sft", data.get("video_dir"), frame_settings(config),
                            data.get("limit"))
    checkpoint = resume_checkpoint(resume, output_dir)
    trainer = SFTTrainer(model=starting_weights(model, checkpoint, config),
                         args=sft_args(config, output_dir), train_dataset=dataset,
                         peft_config=peft_config(config),
                         callbacks=[StepLogCallback(output_dir, "sft", notice)])
    trainer.train(resume_from_checkpoint=checkpoint)
    final = _finish(trainer, output_dir, model, {"stage": "sft", "judge": None})
    return StageResult(trainer, final)


def run_grpo(config: dict, output_dir: str | os.PathLike, resume: bool | str | None = None,
             model: str | None = None, judge=None) -> StageResult:
    """MG-GRPO on the RL split; ``model`` defaults to the config's (else the SFT output)."""
    from trl import GRPOTrainer

    output_dir = Path(output_dir)
    model = model or resolve_model(config["model"])
    notice = model_notice(model)
    judge = judge or make_judge(config.get("judge", "env"))
    print(f"[grpo] model: {notice or model}; judge: {judge.name}", flush=True)
    data = config["data"]
    dataset = build_dataset(data["rl"], "grpo", data.get("video_dir"), frame_settings(config),
                            data.get("limit"))
    args = grpo_args(config, output_dir)
    weights = RewardWeights(*args.reward_weights)
    rewards = MGGRPORewards(MGJudgeScorer(judge, weights))
    checkpoint = resume_checkpoint(resume, output_dir)
    trainer = GRPOTrainer(model=starting_weights(model, checkpoint, config),
                          reward_funcs=rewards.functions(), args=args,
                          train_dataset=dataset, peft_config=peft_config(config),
                          callbacks=[StepLogCallback(output_dir, "grpo", notice, judge.name)])
    trainer.train(resume_from_checkpoint=checkpoint)
    stats = rewards.scorer.stats
    print(f"[grpo] judge requests {stats.requests}, judge errors {stats.errors} "
          f"({judge.name})", flush=True)
    final = _finish(trainer, output_dir, model, {"stage": "grpo", "judge": judge.name})
    return StageResult(trainer, final, rewards)


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
