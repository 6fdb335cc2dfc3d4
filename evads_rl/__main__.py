"""``python -m evads_rl``: E-VAds-R1 training (SFT, GRPO, or both) from a run config."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from evads_tasks.core.annotations import AnnotationError
from evads_tasks.core.judge.config import add_protocol_flag, apply_protocol_flag

from .benchmark_runs import EvaluationError
from .config import ConfigError, load_config, training_configs
from .judge_guard import EXIT_JUDGE_DEAD, JudgeFailureError

COMMANDS = {
    "sft": "SFT stage only (format and e-commerce knowledge) -> OUTPUT_DIR/sft/final",
    "grpo": "MG-GRPO stage only, from the config's model or --model -> OUTPUT_DIR/grpo/final",
    "rl": "E-VAds-R1 training: SFT, then GRPO from the SFT model",
    "validate": "check the config (keys, types, TRL SFTConfig/GRPOConfig, LoRA) and the paths "
                "it reads, then exit; no data decoded, nothing trained",
}
EVALUATE_HELP = ("score a finished run's base and trained models on its held-out file "
                 "(data.eval) through the E-VAds lmms-eval tasks and compare them -> "
                 "RUN_DIR/evaluation/report.md (what `rl` does at its end)")
RUN_CONFIG_FILE = "run_config.json"  # the run's config as it ran, for `evaluate RUN_DIR`


def _common_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--config", default="cpu_smoke",
                         help="a YAML path or a shipped config name ("
                              + ", ".join(training_configs()) + "); default cpu_smoke")
    options.add_argument("--set", dest="overrides", action="append", default=[],
                         metavar="SECTION.KEY=VALUE",
                         help="override a config value (YAML-parsed), e.g. grpo.max_steps=4; "
                              "repeatable")
    options.add_argument("--output-dir", help="run folder (default: the config's output_dir)")
    return options


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evads_rl",
        description="MG-GRPO training on TRL. 'python -m evads_rl COMMAND --help' lists a "
                    "command's options.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common_options()
    for name, summary in COMMANDS.items():
        command = commands.add_parser(name, parents=[common], help=summary, description=summary)
        if name == "grpo":
            command.add_argument("--model", help="start from this model folder instead of the "
                                                 "config's model (e.g. RUN/sft/final)")
        if name in ("grpo", "rl"):  # the stages that judge
            add_protocol_flag(command)
        command.add_argument("--exclude", metavar="FILE",
                             help="leave out the questions this filter file names (python -m "
                                  "evads_tasks audit --export-filter: answerable without the "
                                  "video); sets data.exclude")
        if name == "validate":
            continue
        resume_help = ("alone: resume each stage from its latest checkpoint (a finished stage "
                       "trains nothing more); ")
        resume_help += ("--resume sft=CHECKPOINT and/or --resume grpo=CHECKPOINT (a stage not "
                        "named resumes from its latest)" if name == "rl"
                        else "--resume CHECKPOINT: from that checkpoint folder")
        command.add_argument("--resume", nargs="?", const=True, action="append",
                             metavar="CHECKPOINT", help=resume_help)
        command.add_argument("--fresh", action="store_true",
                             help="train every stage again, even one whose final/ was made "
                                  "with these settings (a rerun otherwise reuses it)")
    evaluate = commands.add_parser("evaluate", help=EVALUATE_HELP, description=EVALUATE_HELP)
    evaluate.add_argument("run_dir", metavar="RUN_DIR", help="the run's --output-dir")
    evaluate.add_argument("--limit", type=int, metavar="N",
                          help="score only the first N questions of data.eval")
    evaluate.add_argument("--config", help=f"the run config (default: RUN_DIR/{RUN_CONFIG_FILE}, "
                                           "written by sft, grpo and rl)")
    evaluate.add_argument("--set", dest="overrides", action="append", default=[],
                          metavar="SECTION.KEY=VALUE",
                          help="override a config value, e.g. data.eval=PATH; repeatable")
    add_protocol_flag(evaluate)
    commands.add_parser("verl-data", add_help=False,
                        help="write an annotation file as verl's RLHFDataset reads it "
                             "(see 'verl-data --help')")
    return parser


def _validate(config: dict, root: Path) -> int:
    """Parse every section as training would; on a machine without a GPU the hardware
    settings (bf16, vLLM on CUDA) are parsed as on CPU and said to be unchecked."""
    import torch

    from .data import STAGES
    from .settings import check_settings, missing_paths

    gpu = torch.cuda.is_available()
    check_settings(config, {stage: root / stage for stage in STAGES},
                   neutral_hardware=not gpu)
    for problem in missing_paths(config):
        print(f"note: {problem}", flush=True)
    hardware = "" if gpu else " (hardware not checked: no GPU here)"
    print(f"{config['_source']}: valid: SFTConfig, GRPOConfig, LoRA and evads settings"
          f"{hardware}", flush=True)
    return 0


def _launched() -> bool:
    return "LOCAL_RANK" in os.environ or "ACCELERATE_PROCESS_INDEX" in os.environ


def _accelerate(stage: str, args: argparse.Namespace, config: dict,
                resume: bool | str | None) -> int:
    """Run one stage under ``accelerate launch`` with the config's launcher file."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               config["accelerate_config"], "-m", "evads_rl", stage, "--config", args.config,
               "--output-dir", str(Path(config["output_dir"]))]
    command += [item for o in args.overrides for item in ("--set", o)]
    if getattr(args, "model", None) and stage == "grpo":
        command += ["--model", args.model]
    if args.exclude:
        command += ["--exclude", args.exclude]
    if stage == "grpo" and args.command == "rl":
        command += ["--model", str(Path(config["output_dir"]) / "sft" / "final")]
    if resume:
        command += ["--resume"] + ([] if resume is True else [resume])
    if getattr(args, "fresh", False):
        command.append("--fresh")
    print("+", " ".join(command), flush=True)
    return subprocess.call(command)


def _save_run_config(config: dict, root: Path) -> None:
    """The config as it runs (overrides applied), for ``evaluate RUN_DIR``."""
    root.mkdir(parents=True, exist_ok=True)
    saved = {key: value for key, value in config.items() if not key.startswith("_")}
    (root / RUN_CONFIG_FILE).write_text(json.dumps(saved, indent=1, default=str) + "\n",
                                        encoding="utf-8")


def _evaluate(config: dict, root: Path, limit: int | None = None) -> int:
    from .before_after import evaluate_run
    from .train import resolve_model

    return evaluate_run(config, root, resolve_model(str(config["model"])), limit)


def _evaluate_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    root = Path(args.run_dir)
    config_file = args.config or root / RUN_CONFIG_FILE
    if not args.config and not Path(config_file).is_file():
        parser.exit(2, f"{parser.prog} evaluate: error: {config_file} not found: evaluate a run "
                       "made by python -m evads_rl sft|grpo|rl, or give its --config\n")
    config = load_config(config_file, args.overrides)
    config["output_dir"] = str(root)
    if args.limit is not None and args.limit < 1:
        parser.exit(2, f"{parser.prog} evaluate: error: --limit must be >= 1\n")
    return _evaluate(config, root, args.limit)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["verl-data"]:
        from .verl_data import main as verl_data_main

        return verl_data_main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    apply_protocol_flag(getattr(args, "protocol", None))  # launched stages inherit it
    try:
        return _run(parser, args)
    except (ConfigError, AnnotationError, FileNotFoundError) as error:  # user input
        parser.exit(2, f"{parser.prog} {args.command}: error: {error}\n")
    except JudgeFailureError as error:
        print(f"{parser.prog} {args.command}: error: {error}", file=sys.stderr, flush=True)
        return EXIT_JUDGE_DEAD
    except EvaluationError as error:
        print(f"{parser.prog} {args.command}: error: {error}", file=sys.stderr, flush=True)
        return 1


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command == "evaluate":
        return _evaluate_command(parser, args)
    from . import train
    from .data import STAGES
    from .heldout import check_heldout, eval_file
    from .resume import stage_resumes
    from .settings import check_settings, require_paths

    stages = STAGES if args.command in ("rl", "validate") else (args.command,)
    model = getattr(args, "model", None)
    fresh = getattr(args, "fresh", False)
    try:
        if fresh and args.resume:
            raise ConfigError("--fresh trains anew and --resume continues: give one of them")
        resumes = stage_resumes(getattr(args, "resume", None), stages)
        config = load_config(args.config, args.overrides)
        if args.output_dir:
            config["output_dir"] = args.output_dir
        if args.exclude:
            config["data"]["exclude"] = args.exclude
        root = Path(config["output_dir"])
        if args.command == "validate":
            return _validate(config, root)
        # Every stage's settings and inputs, and the held-out guard, before any frame is
        # decoded or step trained.
        check_settings(config, {stage: root / stage for stage in stages})
        require_paths(config, stages, model)
        check_heldout(config)
    except ValueError as error:  # stage_resumes' and TRL's own checks of the settings
        raise ConfigError(str(error)) from None
    if not _launched():
        _save_run_config(config, root)
    if config.get("accelerate_config") and not _launched():
        for stage in stages:
            code = _accelerate(stage, args, config, resumes[stage])
            if code:
                return code
        return _evaluate(config, root) if args.command == "rl" and eval_file(config) else 0
    if args.command == "sft":
        result = train.run_sft(config, root / "sft", resumes["sft"], fresh=fresh)
    elif args.command == "grpo":
        result = train.run_grpo(config, root / "grpo", resumes["grpo"], model=model,
                                fresh=fresh)
    else:
        result = train.run_rl(config, resumes, fresh=fresh)[1]
    notice = train.model_notice(str(result.final_dir))
    print(f"{args.command} done: model in {result.final_dir}, per-step log in "
          f"{result.final_dir.parent / 'metrics.jsonl'}"
          + (f"\nNOTE: {notice}" if notice else ""), flush=True)
    if args.command == "rl" and eval_file(config) and not _launched():
        return _evaluate(config, root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
