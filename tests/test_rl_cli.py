"""``python -m evads_rl`` as a user meets it: per-command help, config validation on a
machine without a GPU, and one-line errors (exit 2) for mistakes, before any frame is
decoded or step trained."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from evads_rl.__main__ import main
from evads_rl.config import ConfigError
from evads_rl.train import run_sft


def _exit(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command, option", [("sft", "--resume"), ("grpo", "--model"),
                                             ("rl", "grpo=CHECKPOINT"), ("validate", "--set")])
def test_each_command_has_its_own_help(command, option, capsys):
    code, out, _ = _exit([command, "--help"], capsys)
    assert code == 0
    assert out.startswith(f"usage: python -m evads_rl {command}")
    assert option in out and "--config" in out


@pytest.mark.parametrize("name", ["gpu_1x", "evads_rl/configs/gpu_multi.yaml"])
def test_validate_gpu_configs_without_a_gpu(name, capsys):
    code, out, err = _exit(["validate", "--config", name], capsys)
    assert code == 0, err
    verdict = out.strip().splitlines()[-1]
    assert "valid" in verdict
    if not torch.cuda.is_available():
        assert verdict.endswith("(hardware not checked: no GPU here)")
    # The E-VAds data is not on this machine: said, naming the key to set.
    assert "note: data.sft file data/evads/annotations/sft.parquet not found: set --set " \
           "data.sft=PATH" in out or Path("data/evads/annotations/sft.parquet").is_file()


@pytest.mark.parametrize("argv, says", [
    (["sft", "--config", "no_such"], "one of cpu_smoke, gpu_1x, gpu_multi, "
                                     "multinode_vllm_server"),
    (["sft", "--set", "sft.max_stepz=3"], "sft.max_stepz is not a trl.SFTConfig setting "
                                          "(did you mean max_steps"),
    (["grpo", "--set", "grpo.num_generation=4"], "did you mean num_generations"),
    (["sft", "--set", "data.frames=4"], "data takes sft, rl, video_dir, num_frames"),
    (["sft", "--set", "sft.learning_rate=1e-3"], "sft.learning_rate: expected float"),
    (["grpo", "--model", "/no/such/model"], "--model /no/such/model: model folder not found"),
    (["sft", "--set", "data.sft=/no/such.parquet"], "set --set data.sft=PATH"),
    (["sft", "--set", "model=./no/such/model"], "set --set model=PATH"),
    (["validate", "--config", "multinode_vllm_server"], "EVADS_VLLM_SERVER_URL"),
    (["rl", "--set", "judge=gpt"], "judge must be one of env, similarity"),
])
def test_user_mistakes_are_one_line_errors(argv, says, capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("EVADS_VLLM_SERVER_URL", raising=False)
    code, out, err = _exit([*argv, "--output-dir", str(tmp_path)], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert says in err
    assert not any(tmp_path.iterdir())  # nothing decoded, trained or written


def test_config_is_checked_for_every_stage_before_any_training(capsys, tmp_path):
    """A GRPO typo in `rl` stops the run before SFT trains for minutes."""
    code, _, err = _exit(["rl", "--output-dir", str(tmp_path), "--set", "grpo.bogus=1"], capsys)
    assert code == 2 and "grpo.bogus is not a trl.GRPOConfig setting" in err
    assert not (tmp_path / "sft").exists()


def test_library_stage_checks_settings_before_decoding(tmp_path):
    config = {"model": "tiny:qwen2_vl", "output_dir": str(tmp_path),
              "data": {"sft": str(tmp_path / "missing.parquet")},
              "sft": {"max_steps": 1, "use_cpu": True}, "grpo": {}}
    with pytest.raises(ConfigError, match=r"data\.sft file .*missing\.parquet not found"):
        run_sft(config, tmp_path / "sft")
    config["sft"]["max_stepz"] = 1
    with pytest.raises(ConfigError, match="max_stepz"):
        run_sft(config, tmp_path / "sft")
