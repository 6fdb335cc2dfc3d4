# evads: every target installs what it needs first (make install is idempotent).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# torch and torchvision must be a matching pair, or `import torchvision` breaks.
TORCH_PAIR ?= torch==2.15.0 torchvision==0.29.2
EXTRAS ?= density,rl,dev
SYSTEM_PACKAGES := ffmpeg espeak-ng fonts-noto-cjk
SAMPLE ?= data/sample
SEED ?= 0
OUT ?= runs
# The default runs are offline: no model hub is reached.
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: help install system-packages sample test lint demo demo-annotations demo-eval \
        demo-density demo-rl eval density sft rl bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

install: $(VENV)/.installed  ## create .venv with a matching CPU-runnable torch/torchvision pair

$(VENV)/.installed: setup.cfg pyproject.toml
	@$(MAKE) --no-print-directory system-packages
	test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade uv
	$(VENV)/bin/uv pip install --python $(PY) -e ".[$(EXTRAS)]" $(TORCH_PAIR)
	$(PY) -c "import torch, torchvision; from torchvision.ops import nms; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
	touch $@

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
	@echo "demo outputs are under $(OUT)/demo and $(SAMPLE)"

demo-annotations: sample
	$(PY) -m evads_tasks.annotations summary $(SAMPLE)/annotations/test.parquet

clean:  ## remove generated data and runs (keeps .venv)
	rm -rf $(SAMPLE) $(OUT)
