"""Real TRL training on CPU: the tiny RANDOM Qwen2-VL on frames of the sample videos.

GRPO rewards come from the loopback HTTP judge with a scripted policy that gives
different texts different levels (the random model never writes the tags, so a
reference-overlap judge would score every completion 0 and GRPO would have no signal).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from judge_server import JudgeServer, hashed_levels_policy

from evads_rl.__main__ import main
from evads_rl.config import load_config
from evads_rl.resume import RUN_INFO_FILE, stage_resumes
from evads_rl.settings import grpo_args, peft_config, sft_args
from evads_rl.train import run_grpo, run_sft
from evads_tasks.core.judge import HttpJudge
from evads_tasks.sample.tiny_model import NOTICE_FILE, ensure_tiny_vlm

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return str(ensure_tiny_vlm("qwen2_vl", root=tmp_path_factory.mktemp("models")))


def _config(sample_dir: Path, out: Path, *extra: str) -> dict:
    annotations = sample_dir / "annotations"
    return load_config("cpu_smoke", [f"data.sft={annotations / 'sft.parquet'}",
                                     f"data.rl={annotations / 'rl.parquet'}",
                                     f"data.video_dir={sample_dir / 'videos'}",
                                     f"output_dir={out}", *extra])


def _weights(path: str) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(path)
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _unchanged(before: dict[str, torch.Tensor], model) -> list[str]:
    after = dict(model.named_parameters())
    assert set(after) == set(before)
    return [name for name, p in after.items() if torch.equal(p.detach().cpu(), before[name])]


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_grpo_two_steps_train_every_parameter_with_the_mg_rewards(sample_dir, tiny_model,
                                                                   tmp_path):
    before = _weights(tiny_model)
    config = _config(sample_dir, tmp_path)
    cache = tmp_path / "cache"
    with JudgeServer(policy=hashed_levels_policy) as server, \
            HttpJudge(server.url, "scripted", cache_dir=cache, progress=False) as judge:
        result = run_grpo(config, tmp_path / "grpo", model=tiny_model, judge=judge)
        calls, requests = server.calls, list(server.requests)

    trainer = result.trainer
    assert trainer.state.global_step == 2
    assert all(p.requires_grad for p in trainer.model.parameters())  # vision tower not frozen
    assert any("visual" in name for name in before)
    assert _unchanged(before, trainer.model) == []
    assert calls == result.rewards.scorer.stats.requests > 0
    # The judge got each row's question, metadata and clues from the dataset columns.
    rows = {r["question"]: r for r in result.trainer.train_dataset}
    for request in requests:
        prompt = request["messages"][-1]["content"]
        row = next(r for q, r in rows.items() if q in prompt)
        assert row["clues"] in prompt and row["metadata"] in prompt
    steps = [e for e in _log(tmp_path / "grpo" / "metrics.jsonl") if "reward" in e]
    assert [e["step"] for e in steps] == [1, 2]
    for entry in steps:
        for key in ("rewards/answer_reward/mean", "rewards/trace_reward/mean",
                    "rewards/format_reward/mean", "judge/judge_errors", "completions/mean_length"):
            assert math.isfinite(entry[key]), key
        assert entry["judge/judge_errors"] == 0
        assert "tiny random" in entry["model_notice"]
        assert entry["judge"] == judge.name  # which judge scored this step
    assert any(e["reward_std"] > 0 for e in steps)  # the judge's levels gave GRPO a signal
    assert (tmp_path / "grpo" / "checkpoint-1").is_dir()
    assert (result.final_dir / NOTICE_FILE).is_file()
    info = json.loads((result.final_dir / RUN_INFO_FILE).read_text())
    assert (info["stage"], info["judge"], info["global_step"]) == ("grpo", judge.name, 2)


@pytest.fixture(scope="module")
def sft_run(sample_dir, tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("sft_run")
    before = _weights(tiny_model)
    result = run_sft(_config(sample_dir, out), out / "sft", model=tiny_model)
    return before, result, out


def test_sft_two_steps_finite_loss_and_every_parameter_changes(sft_run):
    before, result, out = sft_run
    assert result.trainer.state.global_step == 2
    losses = [e["loss"] for e in _log(out / "sft" / "metrics.jsonl") if "loss" in e]
    assert len(losses) == 2 and all(math.isfinite(x) and x > 0 for x in losses)
    assert _unchanged(before, result.trainer.model) == []
    assert (result.final_dir / NOTICE_FILE).is_file()  # the trained copy is still random


def _sft_cli(run: Path, sample_dir: Path, tiny_model: str, *extra: str) -> int:
    annotations = sample_dir / "annotations"
    return main(["sft", "--output-dir", str(run), "--set", f"model={tiny_model}",
                 "--set", f"data.sft={annotations / 'sft.parquet'}",
                 "--set", f"data.video_dir={sample_dir / 'videos'}", *extra])


def test_resume_of_a_finished_stage_trains_nothing(sft_run, sample_dir, tiny_model, tmp_path,
                                                   capsys):
    _, uninterrupted, out = sft_run
    run = tmp_path / "run"
    shutil.copytree(out / "sft", run / "sft")
    final_files = {p.name: p.stat().st_mtime_ns for p in (run / "sft" / "final").iterdir()}
    assert _sft_cli(run, sample_dir, tiny_model, "--resume") == 0
    assert "[sft] already complete (step 2): reusing" in capsys.readouterr().out
    assert not (run / "sft" / "checkpoint-3").exists()
    assert {p.name: p.stat().st_mtime_ns for p in (run / "sft" / "final").iterdir()} \
        == final_files
    # Crashed after the last checkpoint, before final/: final/ is written from it, untrained.
    shutil.rmtree(run / "sft" / "final")
    assert _sft_cli(run, sample_dir, tiny_model, "--resume") == 0
    assert "already complete at" in capsys.readouterr().out
    assert not (run / "sft" / "checkpoint-3").exists()
    info = json.loads((run / "sft" / "final" / RUN_INFO_FILE).read_text())
    assert info["global_step"] == 2
    restored = _weights(str(run / "sft" / "final"))
    for name, param in uninterrupted.trainer.model.named_parameters():
        assert torch.equal(restored[name], param.detach()), name
    # A longer run asked of a finished stage continues it.
    assert _sft_cli(run, sample_dir, tiny_model, "--resume", "--set", "sft.max_steps=3") == 0
    assert (run / "sft" / "checkpoint-3").is_dir()
    assert json.loads((run / "sft" / "final" / RUN_INFO_FILE).read_text())["global_step"] == 3


def test_resume_from_step_1_reaches_the_same_step_2(sft_run, sample_dir, tiny_model, tmp_path,
                                                    capfd):
    _, uninterrupted, out = sft_run
    run = tmp_path / "run"
    shutil.copytree(out / "sft" / "checkpoint-1", run / "sft" / "checkpoint-1")
    # A crash after step 2 was logged but before checkpoint-2 was saved, mid-write of a line.
    logged = (out / "sft" / "metrics.jsonl").read_text(encoding="utf-8")
    (run / "sft" / "metrics.jsonl").write_text(logged + '{"stage": "sft", "st', encoding="utf-8")
    assert [e["step"] for e in _log(out / "sft" / "metrics.jsonl") if "loss" in e] == [1, 2]
    annotations = sample_dir / "annotations"
    code = main(["sft", "--output-dir", str(run), "--resume",
                 "--set", f"model={tiny_model}",
                 "--set", f"data.sft={annotations / 'sft.parquet'}",
                 "--set", f"data.video_dir={sample_dir / 'videos'}"])
    assert code == 0
    out, err = capfd.readouterr()
    # The Trainer's own reload warns of every key (Qwen-VL key renaming): said once, not shown.
    assert "weights restored from" in out and "via from_pretrained" in out
    assert "missing keys" not in out + err and "unexpected keys" not in out + err
    log = _log(run / "sft" / "metrics.jsonl")
    assert [e["step"] for e in log if "loss" in e] == [1, 2]  # step 2 logged once, by the resume
    assert log[-1]["step"] == 2 and "train_runtime" in log[-1]
    resumed = _weights(str(run / "sft" / "final"))
    for name, param in uninterrupted.trainer.model.named_parameters():
        assert torch.allclose(resumed[name], param.detach(), atol=1e-6), name


LORA = "peft={r: 4, lora_alpha: 8, target_modules: all-linear, task_type: CAUSAL_LM}"


def test_rl_with_lora_merges_sft_for_grpo(sample_dir, tiny_model, tmp_path, capsys):
    """gpu_1x's path (peft) on CPU: SFT 1 step -> merged full model -> GRPO 1 step on it."""
    annotations = sample_dir / "annotations"
    code = main(["rl", "--output-dir", str(tmp_path), "--set", f"model={tiny_model}",
                 "--set", f"data.sft={annotations / 'sft.parquet'}",
                 "--set", f"data.rl={annotations / 'rl.parquet'}",
                 "--set", f"data.video_dir={sample_dir / 'videos'}",
                 "--set", LORA,
                 "--set", "sft.max_steps=1", "--set", "grpo.max_steps=1",
                 "--set", "grpo.per_device_train_batch_size=2",
                 "--set", "grpo.num_generations=2"])
    assert code == 0
    base = _weights(tiny_model)
    for stage in ("sft", "grpo"):
        final = tmp_path / stage / "final"
        assert (final / "config.json").is_file()  # a full model, loadable by the next stage
        assert (final / "adapter" / "adapter_config.json").is_file()
        info = json.loads((final / RUN_INFO_FILE).read_text())
        assert info["lora_adapter"] == str(final / "adapter") and info["global_step"] == 1
    assert json.loads((tmp_path / "grpo" / "final" / RUN_INFO_FILE).read_text())[
        "start_model"] == str(tmp_path / "sft" / "final")
    merged = _weights(str(tmp_path / "sft" / "final"))
    assert set(merged) == set(base)  # plain model keys: no lora_A/lora_B left
    changed = [name for name in base if not torch.equal(base[name], merged[name])]
    assert any("q_proj" in name for name in changed)  # the LoRA update is in the weights
    assert not any("embed_tokens" in name for name in changed)  # untargeted: untouched
    grpo_log = _log(tmp_path / "grpo" / "metrics.jsonl")
    assert grpo_log and all(e["judge"].startswith("similarity") for e in grpo_log)
    # Crashed after the last checkpoint, before final/: the adapter is restored from it.
    run = tmp_path / "resumed"
    shutil.copytree(tmp_path / "sft", run / "sft", ignore=shutil.ignore_patterns("final"))
    capsys.readouterr()
    assert _sft_cli(run, sample_dir, tiny_model, "--resume", "--set", LORA,
                    "--set", "sft.max_steps=1") == 0
    assert "already complete at" in capsys.readouterr().out
    restored = _weights(str(run / "sft" / "final"))
    assert all(torch.equal(restored[name], merged[name]) for name in merged)


def test_resume_per_stage(tmp_path, capsys):
    checkpoint = tmp_path / "sft" / "checkpoint-3"
    checkpoint.mkdir(parents=True)
    assert stage_resumes(None) == {"sft": None, "grpo": None}
    assert stage_resumes([True]) == {"sft": True, "grpo": True}
    assert stage_resumes([f"sft={checkpoint}"]) == {"sft": str(checkpoint), "grpo": True}
    assert stage_resumes([str(checkpoint)], ("sft",)) == {"sft": str(checkpoint)}
    with pytest.raises(ValueError, match="not found"):
        stage_resumes([f"grpo={tmp_path / 'nowhere'}"])
    with pytest.raises(ValueError, match="this command runs"):
        stage_resumes([f"grpo={checkpoint}"], ("sft",))
    # One checkpoint for both stages of `rl` is refused before anything runs.
    with pytest.raises(SystemExit) as exit_info:
        main(["rl", "--output-dir", str(tmp_path), "--resume", str(checkpoint)])
    assert exit_info.value.code == 2
    assert "--resume sft=CHECKPOINT --resume grpo=CHECKPOINT" in capsys.readouterr().err


@pytest.mark.parametrize("name, vllm_mode", [("gpu_1x", "colocate"), ("gpu_multi", "colocate"),
                                             ("multinode_vllm_server", "server")])
def test_gpu_configs_parse_into_trl_configs(name, vllm_mode, tmp_path, monkeypatch):
    monkeypatch.setenv("EVADS_VLLM_SERVER_URL", "http://10.0.0.5:8000")
    # No GPU here: use_cpu lets TrainingArguments accept bf16; every other value is the file's.
    config = load_config(name, ["sft.use_cpu=true", "grpo.use_cpu=true"])
    grpo, sft = grpo_args(config, tmp_path / "grpo"), sft_args(config, tmp_path / "sft")
    assert grpo.use_vllm and grpo.vllm_mode == vllm_mode and grpo.bf16 and sft.bf16
    assert grpo.reward_weights == [0.8, 0.2, 1.0] and grpo.num_generations == 8
    if vllm_mode == "server":
        assert grpo.vllm_server_base_url == "http://10.0.0.5:8000"
    lora = peft_config(config)
    assert (lora is not None) == (name == "gpu_1x")
    if config.get("accelerate_config"):
        launcher = yaml.safe_load(Path(config["accelerate_config"]).read_text())
        assert launcher["distributed_type"] == "DEEPSPEED"
        assert launcher["deepspeed_config"]["zero_stage"] == 3


def test_config_errors_are_clear(monkeypatch):
    monkeypatch.delenv("EVADS_VLLM_SERVER_URL", raising=False)
    with pytest.raises(ValueError, match="EVADS_VLLM_SERVER_URL"):
        load_config("multinode_vllm_server")
    with pytest.raises(ValueError, match="unknown section"):
        load_config("cpu_smoke", ["trainer.lr=1"])
    with pytest.raises(FileNotFoundError, match="cpu_smoke"):
        load_config("no_such_config")


def test_grpo_stops_on_a_dead_judge_with_a_checkpoint_and_no_final(
        sample_dir, tiny_model, tmp_path, monkeypatch, capsys):
    """The judge refuses every call: GRPO must not train on the format term alone. It stops
    in step 2 (every request of 2 consecutive reward batches failed), keeps checkpoint-1,
    writes no final/ and exits 4; each logged step carries the judge error rate."""
    annotations = sample_dir / "annotations"
    with JudgeServer(faults=lambda i: "401") as server:
        for name, value in (("EVADS_JUDGE_BASE_URL", server.url), ("EVADS_JUDGE_MODEL", "m"),
                            ("EVADS_JUDGE_API_KEY", "sk-SENTINEL-1234"),
                            ("EVADS_CACHE_DIR", str(tmp_path / "cache"))):
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("EVADS_JUDGE", raising=False)
        code = main(["grpo", "--output-dir", str(tmp_path), "--model", tiny_model,
                     "--set", f"data.rl={annotations / 'rl.parquet'}",
                     "--set", f"data.video_dir={sample_dir / 'videos'}",
                     "--set", "grpo.max_steps=4"])
        calls = server.calls
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 4
    assert "the judge failed on" in err and "of the last 2 reward batch(es) (100%" in err
    assert "HTTP 401" in err and "sk-SENTINEL" not in err
    assert f"Training stopped at step 1, checkpoint saved to {tmp_path / 'grpo'}" in err
    assert (tmp_path / "grpo" / "checkpoint-1" / "trainer_state.json").is_file()
    assert not (tmp_path / "grpo" / "final").exists()
    assert 0 < calls <= 16  # two batches of at most 4 completions, answer and trace
    steps = [e for e in _log(tmp_path / "grpo" / "metrics.jsonl") if "reward" in e]
    assert [(e["step"], e["judge/error_rate"]) for e in steps] == [(1, 1.0)]
