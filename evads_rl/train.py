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

import contextlib
import dataclasses
import difflib
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from evads_tasks.annotations.io import looks_like_path
from evads_tasks.judge.config import BASE_URL_ENV
from evads_tasks.tiny_model import NOTICE_FILE, ensure_tiny_vlm, is_tiny_random

from .callbacks import StepLogCallback
from .config import ConfigError
from .data import STAGES, FrameSettings, build_dataset
from .judging import MGGRPORewards, MGJudgeScorer
from .rewards import RewardWeights

log = logging.getLogger(__name__)
TINY_PREFIX = "tiny:"
DATA_KEYS = {"sft": "sft", "grpo": "rl"}  # each stage's annotation file in the data section
JUDGE_MODES = ("env", "similarity")
ADAPTER_DIR = "adapter"
RUN_INFO_FILE = "evads_training.json"


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


def make_judge(mode: str = "env", cache_dir: str | os.PathLike | None = None):
    """``similarity``: the offline fallback judge unless a judge URL is configured in the
    environment (a real judge always wins); ``env``: whatever ``judge_from_env`` finds."""
    if mode not in JUDGE_MODES:
        raise ValueError(f"judge must be 'env' or 'similarity', got {mode!r}")
    if mode == "similarity" and not os.environ.get(BASE_URL_ENV):
        from evads_tasks.judge.similarity import SimilarityJudge

        return SimilarityJudge()
    from evads_tasks.judge import judge_from_env

    return judge_from_env(cache_dir)


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
    values = _typed_settings(cls, section, config[section])
    if neutral_hardware:
        values["use_cpu"] = True
    try:
        return cls(output_dir=str(output_dir), **extra, **values)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{section}: not a valid {cls.__name__}: {error}") from None


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
    return problems


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
    (legacy) key layout, so that reload silently restores nothing (transformers 5.23; it
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
    train one step from it (transformers 5.23 checks ``max_steps`` only after a step)."""
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


def _train_or_restore(trainer, stage: str, checkpoint: str | None, config: dict) -> None:
    """Train (resuming from ``checkpoint``), or, when the checkpoint is the stage's last step
    and only ``final/`` is missing, restore it without training another step."""
    if checkpoint_is_last(checkpoint, trainer.args):
        from transformers import TrainerState

        trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
        if config.get("peft"):  # the full model was loaded from the checkpoint already
            trainer._load_from_checkpoint(checkpoint)
        print(f"[{stage}] already complete at {checkpoint} (step {trainer.state.global_step});"
              " saving final/ from it, nothing trained", flush=True)
        return
    with _checkpoint_reload_quiet(stage, checkpoint, config):
        trainer.train(resume_from_checkpoint=checkpoint)


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
                            frame_settings(config), data.get("limit"))
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
    _train_or_restore(trainer, "sft", checkpoint, config)
    final = _finish(trainer, output_dir, model, {"stage": "sft", "judge": None})
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
    rewards = MGGRPORewards(MGJudgeScorer(judge, weights))
    trainer = GRPOTrainer(model=starting_weights(model, checkpoint, config),
                          reward_funcs=rewards.functions(), args=args,
                          train_dataset=dataset, peft_config=peft_config(config),
                          callbacks=[StepLogCallback(output_dir, "grpo", notice, judge.name)])
    _train_or_restore(trainer, "grpo", checkpoint, config)
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
