# evads: every target installs what it needs first (make install is idempotent).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# Environments come from committed lock files (README "Environments"): locks/cpu.txt for
# make demo / make test / CI, locks/gpu.txt for CUDA nodes (vllm, trl[vllm], deepspeed).
# Both share one torch/torchvision/transformers line: the CPU tests run what GPU nodes run.
PROFILE ?= cpu
LOCK := locks/$(PROFILE).txt
UV_VERSION := 0.13.9
UV := $(VENV)/bin/uv
# Resolve for Linux x86_64 / CPython 3.11 whatever machine runs `make lock`.
LOCK_TARGET := --python-version 3.11 --python-platform x86_64-manylinux_2_28
CPU_EXTRAS := --extra density --extra rl --extra dev
SYSTEM_PACKAGES := ffmpeg espeak-ng fonts-noto-cjk
SAMPLE ?= data/sample
SEED ?= 0
OUT ?= runs
# The default runs are offline: no model hub is reached.
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: help install install-gpu lock lock-check system-packages sample test lint demo \
        demo-annotations demo-eval demo-density demo-rl eval density sft rl bench gpu-check clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

install: $(VENV)/.installed  ## install exactly the lock of PROFILE (cpu; gpu on CUDA nodes) + evads, editable

install-gpu:  ## install the gpu lock (vllm, trl[vllm], deepspeed) on a CUDA machine
	@$(MAKE) --no-print-directory install PROFILE=gpu

# Re-runs when the lock, the package metadata or the profile changes (the stamp names them).
$(VENV)/.installed: $(LOCK) setup.cfg pyproject.toml $(if $(filter-out $(PROFILE),$(file <$(VENV)/.profile)),FORCE)
	@$(MAKE) --no-print-directory system-packages
	test -x $(VENV)/bin/python || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	test -x $(UV) && $(UV) --version | grep -q " $(UV_VERSION)" || \
	  $(VENV)/bin/python -m pip install -q "uv==$(UV_VERSION)"
	$(UV) pip sync --python $(PY) $(LOCK)
	$(UV) pip install --python $(PY) --no-deps -e .
	$(PY) -c "import torch, torchvision; from torchvision.ops import nms; print('installed $(LOCK): torch', torch.__version__, 'torchvision', torchvision.__version__)"
	echo $(PROFILE) > $(VENV)/.profile
	touch $@

FORCE:

lock:  ## re-resolve locks/gpu.txt, then locks/cpu.txt inside it, from setup.cfg (Linux x86_64, Python 3.11)
	@test -x $(UV) || { test -x $(VENV)/bin/python || python3 -m venv $(VENV); $(VENV)/bin/python -m pip install -q "uv==$(UV_VERSION)"; }
	@mkdir -p locks
	$(UV) pip compile setup.cfg --all-extras $(LOCK_TARGET) $(LOCK_FLAGS) -o locks/gpu.txt
	$(UV) pip compile setup.cfg $(CPU_EXTRAS) -c locks/gpu.txt $(LOCK_TARGET) $(LOCK_FLAGS) -o locks/cpu.txt
	@echo "locks written; run make install (and make test) before committing them"

lock-check: install  ## the locks match setup.cfg, and the gpu lock still resolves on its own (no download)
	$(PY) -m pytest -q tests/test_locks.py
	$(UV) pip compile locks/gpu.txt $(LOCK_TARGET) --no-header --quiet -o /dev/null
	@echo "locks/gpu.txt resolves for Linux x86_64 / Python 3.11"

system-packages:  ## ffmpeg, espeak-ng and CJK fonts (apt) for decoding and the sample videos
	@missing=""; \
	command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; \
	command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || missing="$$missing fonts-noto-cjk"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	  else echo "error: please install with apt: $(SYSTEM_PACKAGES) (missing:$$missing)"; exit 1; fi; \
	fi

sample: $(SAMPLE)/.done  ## generate the bundled sample dataset (deterministic from SEED)

$(SAMPLE)/.done: $(VENV)/.installed $(shell find evads_tasks/sample -name '*.py' 2>/dev/null)
	$(PY) -m evads_tasks.sample --out $(SAMPLE) --seed $(SEED)
	touch $@

test: install  ## run the test suite (the README's test command)
	$(PY) -m pytest -q tests

lint: install  ## ruff
	$(VENV)/bin/ruff check evads_tasks evads_density evads_rl tests bench

demo: demo-annotations demo-eval demo-density demo-rl  ## the main job on the sample dataset, offline
	@echo "demo outputs (offline; tiny random models; similarity judge unless EVADS_JUDGE_BASE_URL is set):"
	@echo "  sample dataset:    $(SAMPLE) (videos/, annotations/, script.json)"
	@echo "  evaluation report: $$(ls -t $(OUT)/demo/eval/*/evads_report.md | head -1)"
	@echo "  density report:    $(OUT)/demo/density/report.md and density.png"
	@echo "  training:          $(OUT)/demo/rl/{sft,grpo}/final and */metrics.jsonl"

# ---- E-VAds as lmms-eval tasks (make eval / make demo-eval) ----
# Defaults: the sample dataset, the tiny RANDOM Qwen2.5-VL through lmms-eval's own
# qwen2_5_vl class, the offline similarity judge unless EVADS_JUDGE_BASE_URL is set.
# Data: EVADS_ANNOTATIONS (default: the sample's) and EVADS_VIDEO_DIR (default: videos/
# beside the annotations/ folder, see evads_tasks/tasks/utils.py).
# Frames (README "Frames"): fps=2,max_num_frames=768 as in the paper; MODEL_SEQ_LEN=27307
# makes qwen-vl-utils' total video pixel budget 0.9*27307*28*28 = 24576*28*28, the paper's,
# for 14-px-patch models (Qwen2/2.5-VL; Qwen3-VL needs MODEL_SEQ_LEN=20907).
# The tiny model's runs cap pixels per frame and new tokens (64) for CPU; any other model
# keeps the official 1524 new tokens. Judge calls run on EVADS_JUDGE_CONCURRENCY (16) threads
# (the lmms_eval console script passes --process_docs_parallel unless EVAL_FLAGS does).
# A failed run stops here: lmms_eval exits 1 with the cause last (lmms-eval itself exits 0).
TINY_VLM ?= $(OUT)/models/tiny-random-qwen2-5-vl
MODEL ?= qwen2_5_vl
MODEL_ARGS ?= pretrained=$(TINY_VLM),device=cpu,device_map=cpu,fps=2,max_num_frames=768,min_pixels=3136,max_pixels=25088
EVAL_TASKS ?= evads
EVAL_OUT ?= $(OUT)/eval
EVAL_FLAGS ?=
TINY_EVAL = $(findstring $(TINY_VLM),$(MODEL_ARGS))

$(TINY_VLM)/TINY_RANDOM_MODEL.md: $(VENV)/.installed
	$(PY) -m evads_tasks.tiny_model --family qwen2_5_vl --out $(TINY_VLM)

eval: install $(if $(EVADS_ANNOTATIONS),,sample) $(if $(TINY_EVAL),$(TINY_VLM)/TINY_RANDOM_MODEL.md)  ## lmms-eval on E-VAds (MODEL=, MODEL_ARGS=, EVAL_TASKS=, EVAL_OUT=, EVAL_FLAGS=)
	@if [ -z "$$EVADS_JUDGE_BASE_URL" ] && [ -z "$$EVADS_JUDGE" ]; then \
	  echo "judge: offline similarity fallback (NOT the paper's LLM judge; set EVADS_JUDGE_BASE_URL for one)"; fi
	@$(if $(TINY_EVAL),echo "model: tiny RANDOM $(MODEL) built offline (answers capped at 64 new tokens): its answers are gibberish and its scores mean nothing")
	started=$$(date +%s) && \
	EVADS_ANNOTATIONS=$${EVADS_ANNOTATIONS:-$(SAMPLE)/annotations/test.parquet} \
	EVADS_JUDGE=$${EVADS_JUDGE:-$$( [ -n "$$EVADS_JUDGE_BASE_URL" ] || echo similarity)} \
	MODEL_SEQ_LEN=$${MODEL_SEQ_LEN:-27307} \
	$(VENV)/bin/lmms_eval --model $(MODEL) --model_args "$(MODEL_ARGS)" --tasks $(EVAL_TASKS) \
	  --output_path $(EVAL_OUT) --log_samples $(if $(TINY_EVAL),--gen_kwargs max_new_tokens=64) \
	  $(EVAL_FLAGS) && \
	$(PY) -m evads_tasks report $(EVAL_OUT) --since $$started
	@echo "results, samples and evads_report.md are under $(EVAL_OUT)"

demo-eval:  ## the sample dataset, tiny random model, offline judge -> runs/demo/eval
	@$(MAKE) --no-print-directory eval EVAL_OUT=$(OUT)/demo/eval

# ---- MG-GRPO training on TRL (make sft / make rl / make demo-rl) ----
# Default: evads_rl/configs/cpu_smoke.yaml = the tiny RANDOM Qwen2-VL on the sample dataset,
# 2 steps per stage on CPU, offline similarity judge unless EVADS_JUDGE_BASE_URL is set.
# Others: CONFIG=evads_rl/configs/gpu_1x.yaml (gpu_multi, multinode_vllm_server).
# RL_FLAGS: e.g. --resume (each stage from its latest checkpoint), --resume grpo=CHECKPOINT,
# --set grpo.max_steps=4, --output-dir DIR.
CONFIG ?= evads_rl/configs/cpu_smoke.yaml
RL_FLAGS ?=

sft: $(if $(findstring cpu_smoke,$(CONFIG)),sample,install)  ## SFT stage only (CONFIG=, RL_FLAGS=)
	$(PY) -m evads_rl sft --config $(CONFIG) $(RL_FLAGS)

rl: $(if $(findstring cpu_smoke,$(CONFIG)),sample,install)  ## MG-GRPO training: SFT, then GRPO from the SFT model (CONFIG=, RL_FLAGS=)
	$(PY) -m evads_rl rl --config $(CONFIG) $(RL_FLAGS)

demo-rl: sample  ## CPU smoke training (SFT 2 steps, GRPO 2 steps) on the sample -> runs/demo/rl
	@echo "model: tiny RANDOM Qwen2-VL built offline: it answers gibberish, its rewards mean nothing"
	@$(MAKE) --no-print-directory rl CONFIG=evads_rl/configs/cpu_smoke.yaml \
	  RL_FLAGS="--output-dir $(OUT)/demo/rl"
	@echo "demo-rl outputs: $(OUT)/demo/rl/{sft,grpo}/final (models), */metrics.jsonl (per-step logs)"
	@echo "note: the random model never writes the tags, so with the similarity judge every GRPO reward is 0 and its gradient is 0 (tests/test_rl_train.py shows GRPO moving every weight with a scripted loopback judge)"

# ---- multi-modal information density (make density / make demo-density) ----
# DATASET: a folder of videos, an annotation file or a hub id. Videos of an annotation file:
# VIDEO_DIR, else $EVADS_VIDEO_DIR, else videos/ beside its annotations/ folder or beside the
# file (as for make eval); none found -> the annotations alone.
# Output: DENSITY_OUT (default $(OUT)/density); rerun to resume, --fresh to start over.
DATASET ?=
VIDEO_DIR ?=
DENSITY_OUT ?= $(OUT)/density
DENSITY_FLAGS ?=
DENSITY_USAGE := make density DATASET=PATH [VIDEO_DIR=DIR] [OUT=ROOT | DENSITY_OUT=DIR] [DENSITY_FLAGS='...']

density: install  ## Vden/Aden/Oden of DATASET=PATH [VIDEO_DIR=] [OUT=ROOT|DENSITY_OUT=DIR] [DENSITY_FLAGS=]
	@test -n "$(DATASET)" || { echo "DATASET is required: $(DENSITY_USAGE)"; \
	  echo "  DENSITY_FLAGS: any of python -m evads_density --help, e.g. --source annotations, --workers 2, --backend ray, --visual-model DIR, --asr-model DIR, --ocr-count unique, --device cuda, --fresh"; exit 2; }
	$(PY) -m evads_density "$(DATASET)" --out "$(DENSITY_OUT)" \
	  $(if $(VIDEO_DIR),--video-dir "$(VIDEO_DIR)") $(DENSITY_FLAGS)

demo-density: sample  ## density of the sample, from its videos and its annotations -> runs/demo/density
	@$(MAKE) --no-print-directory density DATASET=$(SAMPLE)/annotations/test.parquet \
	  VIDEO_DIR=$(SAMPLE)/videos DENSITY_OUT=$(OUT)/demo/density DENSITY_FLAGS="--workers 2"

demo-annotations: sample  ## summary of the sample's annotations (videos, questions per task and category)
	$(PY) -m evads_tasks.annotations summary $(SAMPLE)/annotations/test.parquet

bench: install  ## speed targets: runs every bench/*.py but gpu_check.py (judge throughput, ...)
	@set -e; for script in $(filter-out bench/gpu_check.py,$(wildcard bench/*.py)); do \
	  echo "== $$script"; $(PY) $$script; done

gpu-check: install  ## on a CUDA node with PROFILE=gpu: lmms-eval vllm, GRPO with vLLM, density on cuda
	$(PY) bench/gpu_check.py $(GPU_CHECK_FLAGS)

clean:  ## remove generated data and runs (keeps .venv)
	rm -rf $(SAMPLE) $(OUT)
