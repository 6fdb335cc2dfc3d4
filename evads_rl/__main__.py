"""``python -m evads_rl``: E-VAds-R1 training (SFT, GRPO, or both) from a run config."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from evads_tasks.core.judge.config import add_protocol_flag, apply_protocol_flag

from .config import load_config, training_configs
from .judge_guard import EXIT_JUDGE_DEAD, JudgeFailureError

COMMANDS = {
    "sft": "SFT stage only (format and e-commerce knowledge) -> OUTPUT_DIR/sft/final",
    "grpo": "MG-GRPO stage only, from the config's model or --model -> OUTPUT_DIR/grpo/final",
    "rl": "E-VAds-R1 training: SFT, then GRPO from the SFT model",
    "validate": "check the config (keys, types, TRL SFTConfig/GRPOConfig, LoRA) and the paths "
                "it reads, then exit; no data decoded, nothing trained",
}


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
    print("+", " ".join(command), flush=True)
    return subprocess.call(command)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["verl-data"]:
        from .verl_data import main as verl_data_main

        return verl_data_main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    apply_protocol_flag(getattr(args, "protocol", None))  # launched stages inherit it
    from . import train
    from .data import STAGES
    from .resume import stage_resumes
    from .settings import check_settings, require_paths

    stages = STAGES if args.command in ("rl", "validate") else (args.command,)
    model = getattr(args, "model", None)
    try:
        resumes = stage_resumes(getattr(args, "resume", None), stages)
        config = load_config(args.config, args.overrides)
        if args.output_dir:
            config["output_dir"] = args.output_dir
        if args.exclude:
            config["data"]["exclude"] = args.exclude
        root = Path(config["output_dir"])
        if args.command == "validate":
            return _validate(config, root)
        # Every stage's settings and inputs, before any frame is decoded or step trained.
        check_settings(config, {stage: root / stage for stage in stages})
        require_paths(config, stages, model)
    except (ValueError, FileNotFoundError) as error:  # ConfigError and friends: user input
        parser.exit(2, f"{parser.prog} {args.command}: error: {error}\n")
    if config.get("accelerate_config") and not _launched():
        for stage in stages:
            code = _accelerate(stage, args, config, resumes[stage])
            if code:
                return code
        return 0
    try:
        if args.command == "sft":
            result = train.run_sft(config, root / "sft", resumes["sft"])
        elif args.command == "grpo":
            result = train.run_grpo(config, root / "grpo", resumes["grpo"], model=model)
        else:
            result = train.run_rl(config, resumes)[1]
    except JudgeFailureError as error:
        print(f"{parser.prog} {args.command}: error: {error}", file=sys.stderr, flush=True)
        return EXIT_JUDGE_DEAD
    notice = train.model_notice(str(result.final_dir))
    print(f"{args.command} done: model in {result.final_dir}, per-step log in "
          f"{result.final_dir.parent / 'metrics.jsonl'}"
          + (f"\nNOTE: {notice}" if notice else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
