"""The two E-VAds-R1 training stages on TRL: SFT (SFTTrainer), then MG-GRPO (GRPOTrainer).

Each stage reads its annotation file, samples frames from the videos
(:mod:`evads_rl.data`), trains with the TRL config of the run config's ``sft`` /
``grpo`` section, checkpoints every ``save_steps`` into ``<output_dir>/<stage>``
(resume with ``resume=True`` for the latest checkpoint, or a checkpoint path),
logs each step to ``<output_dir>/<stage>/metrics.jsonl``, and saves the final
model and processor to ``<output_dir>/<stage>/final``. ``run_rl`` chains them:
GRPO starts from the SFT output.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from evads_tasks.tiny_model import NOTICE_FILE, ensure_tiny_vlm, is_tiny_random

from .callbacks import StepLogCallback
from .data import FrameSettings, build_dataset
from .judging import MGGRPORewards, MGJudgeScorer
from .rewards import RewardWeights

log = logging.getLogger(__name__)
TINY_PREFIX = "tiny:"


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


def starting_weights(model: str, checkpoint: str | None, config: dict) -> str:
    """Where a stage loads its weights from: the checkpoint itself when resuming a full
    fine-tune. The Trainer reloads checkpoints with ``load_state_dict(strict=False)`` and
    no key renaming, but Qwen2-VL / Qwen2.5-VL checkpoints are saved in the renamed
    (legacy) key layout, so that reload silently restores nothing (transformers 5.23; it
    logs missing/unexpected keys). ``from_pretrained(checkpoint)`` renames them right; the
    Trainer still restores optimizer, scheduler, RNG and step. LoRA adapters reload fine."""
    return checkpoint if checkpoint and not config.get("peft") else model


def _finish(trainer, output_dir: Path, model: str) -> Path:
    final = output_dir / "final"
    trainer.save_model(str(final))
    if trainer.processing_class is not None:
        trainer.processing_class.save_pretrained(str(final))
    if is_tiny_random(model):  # the copy is just as random: keep the warning with it
        shutil.copy(Path(model) / NOTICE_FILE, final / NOTICE_FILE)
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
    return StageResult(trainer, _finish(trainer, output_dir, model))


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
                          callbacks=[StepLogCallback(output_dir, "grpo", notice)])
    trainer.train(resume_from_checkpoint=checkpoint)
    stats = rewards.scorer.stats
    print(f"[grpo] judge requests {stats.requests}, judge errors {stats.errors} "
          f"({judge.name})", flush=True)
    return StageResult(trainer, _finish(trainer, output_dir, model), rewards)


def run_rl(config: dict, resume: bool | str | None = None) -> tuple[StageResult, StageResult]:
    """E-VAds-R1 training: SFT, then GRPO from the SFT model (``resume`` applies to both)."""
    root = Path(config["output_dir"])
    sft = run_sft(config, root / "sft", resume=resume)
    grpo = run_grpo(config, root / "grpo", resume=resume, model=str(sft.final_dir))
    return sft, grpo
