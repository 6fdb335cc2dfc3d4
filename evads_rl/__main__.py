"""``python -m evads_rl``: E-VAds-R1 training (SFT, GRPO, or both) from a run config."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from .config import load_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evads_rl",
        description="MG-GRPO training on TRL: 'sft' (SFT stage), 'grpo' (GRPO stage), 'rl' "
                    "(SFT then GRPO from the SFT model), 'validate' (parse the config into "
                    "TRL's SFTConfig/GRPOConfig and exit). 'verl-data' writes an annotation "
                    "file as verl's RLHFDataset reads it (see 'verl-data --help').")
    parser.add_argument("command", choices=("sft", "grpo", "rl", "validate", "verl-data"))
    parser.add_argument("--config", default="cpu_smoke",
                        help="a YAML path or a shipped config name (cpu_smoke, gpu_1x, "
                             "gpu_multi, multinode_vllm_server); default cpu_smoke")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE",
                        help="override a config value (YAML-parsed), e.g. grpo.max_steps=4")
    parser.add_argument("--output-dir", help="run folder (default: the config's output_dir)")
    parser.add_argument("--model", help="grpo: start from this model folder instead of the "
                                        "config's model")
    parser.add_argument("--resume", nargs="?", const=True, action="append", metavar="CHECKPOINT",
                        help="alone: resume each stage from its latest checkpoint; sft/grpo: "
                             "--resume CHECKPOINT; rl: --resume sft=CHECKPOINT and/or "
                             "--resume grpo=CHECKPOINT (a stage not named resumes from its "
                             "latest)")
    return parser


def _launched() -> bool:
    return "LOCAL_RANK" in os.environ or "ACCELERATE_PROCESS_INDEX" in os.environ


def _accelerate(stage: str, args: argparse.Namespace, config: dict,
                resume: bool | str | None) -> int:
    """Run one stage under ``accelerate launch`` with the config's launcher file."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               config["accelerate_config"], "-m", "evads_rl", stage, "--config", args.config,
               "--output-dir", str(Path(config["output_dir"]))]
    command += [item for o in args.overrides for item in ("--set", o)]
    if args.model and stage == "grpo":
        command += ["--model", args.model]
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
    from . import train

    stages = train.STAGES if args.command in ("rl", "validate") else (args.command,)
    try:
        resumes = train.stage_resumes(args.resume, stages)
    except ValueError as error:
        parser.error(str(error))
    config = load_config(args.config, args.overrides)
    if args.output_dir:
        config["output_dir"] = args.output_dir
    root = Path(config["output_dir"])
    if args.command == "validate":
        train.sft_args(config, root / "sft")
        train.grpo_args(config, root / "grpo")
        train.peft_config(config)
        print(f"{config['_source']}: valid SFTConfig, GRPOConfig and peft settings")
        return 0
    if config.get("accelerate_config") and not _launched():
        for stage in stages:
            code = _accelerate(stage, args, config, resumes[stage])
            if code:
                return code
        return 0
    if args.command == "sft":
        result = train.run_sft(config, root / "sft", resumes["sft"])
    elif args.command == "grpo":
        result = train.run_grpo(config, root / "grpo", resumes["grpo"], model=args.model)
    else:
        result = train.run_rl(config, resumes)[1]
    notice = train.model_notice(str(result.final_dir))
    print(f"{args.command} done: model in {result.final_dir}, per-step log in "
          f"{result.final_dir.parent / 'metrics.jsonl'}"
          + (f"\nNOTE: {notice}" if notice else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
