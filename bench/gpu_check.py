"""`make gpu-check`: prove the GPU paths on a CUDA machine with the gpu profile installed.

Three checks, each a real command line run in a subprocess with tiny RANDOM models built
offline (no model hub is reached there either), each printing one PASS/FAIL line with its
time:
  (a) the E-VAds suite through lmms-eval's `vllm` model on the sample dataset;
  (b) two GRPO steps with vLLM rollouts colocated with the trainer (use_vllm=True);
  (c) density with a transformers visual backbone and faster-whisper on CUDA (OCR, a
      CPU path that make test covers, is left out).
The tiny models answer gibberish: these checks prove the code paths, not any score.
Without a CUDA device it says so and exits 2; it never reports a check it did not run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
# The judge configured in the environment, else the offline similarity fallback: the
# fallback make eval sets, for evads_tasks.core.judge.config (the one place that decides) to apply.
JUDGE = {"EVADS_JUDGE_FALLBACK": os.environ.get("EVADS_JUDGE_FALLBACK") or "similarity"}


def cuda_device() -> str | None:
    """The first CUDA device's name, or None where torch sees none."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def run(name: str, command: list[str], log: Path, timeout_s: float,
        env: dict[str, str] | None = None) -> bool:
    """Run one check, its output to `log`; print one PASS/FAIL line with the time taken."""
    started = time.monotonic()
    with log.open("w") as out:
        try:
            code = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                  env={**os.environ, **OFFLINE, **JUDGE, **(env or {})},
                                  timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    seconds = time.monotonic() - started
    if code == 0:
        print(f"PASS {name:<34} {seconds:6.1f} s", flush=True)
        return True
    tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
    print(f"FAIL {name:<34} {seconds:6.1f} s  exit {code}; log {log}: {tail[-400:]}",
          flush=True)
    return False


def build_inputs(work: Path, sample: Path | None) -> dict[str, Path]:
    """The sample dataset (unless given) and the tiny random models, built offline once."""
    paths = {"sample": sample or work / "sample", "vlm": work / "tiny-random-qwen2-5-vl",
             "rl_vlm": work / "tiny-random-qwen2-vl", "dino": work / "tiny-random-dinov2"}
    if not (paths["sample"] / ".done").exists():
        subprocess.run([PYTHON, "-m", "evads_tasks.sample", "--out", str(paths["sample"])],
                       cwd=ROOT, check=True, env={**os.environ, **OFFLINE})
        (paths["sample"] / ".done").touch()
    for family, key in (("qwen2_5_vl", "vlm"), ("qwen2_vl", "rl_vlm")):
        if not paths[key].exists():
            subprocess.run([PYTHON, "-m", "evads_tasks.sample.tiny_model", "--family", family,
                            "--out", str(paths[key])], cwd=ROOT, check=True,
                           env={**os.environ, **OFFLINE})
    if not paths["dino"].exists():
        from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

        config = Dinov2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=128, image_size=224, patch_size=14)
        Dinov2Model(config).save_pretrained(paths["dino"])
        BitImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224},
                          do_center_crop=True).save_pretrained(paths["dino"])
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "gpu_check",
                        help="folder for the sample, the tiny models and the logs")
    parser.add_argument("--only", choices=("eval", "grpo", "density"), action="append",
                        help="run only these checks (repeatable; default: all three)")
    parser.add_argument("--timeout", type=float, default=150.0,
                        help="seconds each check may take")
    parser.add_argument("--sample", type=Path,
                        help="an existing sample dataset (default: build one, needs ffmpeg)")
    parser.add_argument("--rollouts", choices=("vllm", "hf"), default="vllm",
                        help="(b)'s rollout engine; hf (transformers generate) only where "
                             "vllm cannot be installed, and the line says so")
    parser.add_argument("--asr", choices=("faster-whisper", "none"), default="faster-whisper",
                        help="(c)'s ASR; none only where faster-whisper's CUDA build is "
                             "missing, and the line says so")
    args = parser.parse_args(argv)
    device = cuda_device()
    if device is None:
        print("gpu-check: no CUDA device visible to torch on this machine; nothing was run "
              "(run `make gpu-check PROFILE=gpu` on a GPU node)")
        return 2
    print(f"gpu-check on {device} (tiny RANDOM models: code paths only, scores mean nothing)")
    args.work.mkdir(parents=True, exist_ok=True)
    paths = build_inputs(args.work, args.sample)
    only = set(args.only or ("eval", "grpo", "density"))
    results = []
    if "eval" in only:
        results.append(run("(a) lmms-eval vllm on the sample", [
            str(Path(PYTHON).parent / "lmms_eval"), "--model", "vllm", "--model_args",
            f"model={paths['vlm']},gpu_memory_utilization=0.3,max_frame_num=8,nframes=4,"
            f"max_pixels=50176,max_new_tokens=32",
            "--tasks", "evads", "--limit", "4", "--output_path", str(args.work / "eval"),
            "--log_samples"], args.work / "eval.log", args.timeout,
            {"EVADS_ANNOTATIONS": str(paths["sample"] / "annotations" / "test.parquet")}))
    if "grpo" in only:
        sample = paths["sample"] / "annotations"
        vllm = args.rollouts == "vllm"
        engine = ["--set", "grpo.use_vllm=true", "--set", "grpo.vllm_mode=colocate",
                  "--set", "grpo.vllm_gpu_memory_utilization=0.3"] if vllm else []
        results.append(run("(b) 2 GRPO steps, " + (
            "vLLM colocate" if vllm else "HF generate (NOT vLLM)"), [
            PYTHON, "-m", "evads_rl", "grpo", "--config", "evads_rl/configs/cpu_smoke.yaml",
            "--model", str(paths["rl_vlm"]), "--output-dir", str(args.work / "grpo"),
            "--set", f"data.rl={sample / 'rl.parquet'}",
            "--set", f"data.video_dir={paths['sample'] / 'videos'}",
            "--set", "grpo.use_cpu=false", "--set", "grpo.bf16=true", *engine],
            args.work / "grpo.log", args.timeout))
    if "density" in only:
        whisper = args.asr == "faster-whisper"
        results.append(run("(c) density: backbone" + (
            " + whisper" if whisper else ", NO ASR") + ", cuda", [
            PYTHON, "-m", "evads_density", str(paths["sample"] / "videos"),
            "--out", str(args.work / "density"), "--fresh", "--device", "cuda",
            "--visual-model", str(paths["dino"]), "--asr", args.asr, "--ocr", "none"],
            args.work / "density.log", args.timeout))
    print(f"gpu-check: {sum(results)} of {len(results)} passed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
