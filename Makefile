# Two commands do everything: `make repro` (the pipeline) and `make test` (the test suite).
# Both create .venv from requirements.lock when it is missing or older than the lock.
# `make test-fast` is the edit loop (no full `dvc repro`, no multi-process runs: `-m "not slow"`);
# `make results` regenerates the committed dvc.lock, metrics/, plots/ and their platform record.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export GRADIO_ANALYTICS_ENABLED ?= False
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PYTHONDONTWRITEBYTECODE ?= 1
# dvc.yaml commands call `python`: make it the venv's.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: venv repro repro-real-size test test-fast lint bench results plots-page clean-venv

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

repro: venv
	$(BIN)/dvc repro

# The whole DAG with ViT-B/32, VideoMAE-base and wav2vec2-base (random weights) on
# real-resolution look-alikes, in a throwaway copy: per-stage wall time and peak RSS
# (bench/results/real_size.json; docs/performance.md).
repro-real-size: venv
	$(BIN)/python bench/real_size.py

test: venv
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

test-fast: venv
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -m "not slow"

results: venv
	AFFECTPIPE_PROCESSES=1 $(BIN)/dvc repro --force
	AFFECTPIPE_PROCESSES=1 $(BIN)/python -m affectpipe.reproducibility record
	$(BIN)/python -m affectpipe.results README.md

lint: venv
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: venv
	$(BIN)/python bench/extract.py
	$(BIN)/python bench/va_epoch.py
	$(BIN)/python bench/multimodal_epoch.py
	$(BIN)/python bench/scale.py

# The committed page `dvc plots show` fills (.dvc/plots_page.html), rebuilt from the pinned npm
# packages (needs npm); the same pins give the same bytes.
plots-page: venv
	$(BIN)/python -m affectpipe.plots_page

clean-venv:
	rm -rf $(VENV)
