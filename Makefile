# The README's commands. Everything installs into .venv from nothing and is idempotent.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# PyTorch pinned: a looser requirement pulls a multi-GB CUDA build. Here pip takes the CPU wheel
# that lies on disk; elsewhere install it first from https://download.pytorch.org/whl/cpu.
TORCH  := torch==2.13.0
HOST   ?= 127.0.0.1
PORT   ?= 8000
REPOSITORY ?= model-repository

.PHONY: install run test lint bench bench-quality reliability default-model clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@echo "make: installing aeserve into $(VENV) (PyTorch included: a few minutes the first time)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[train,dev]'
	touch $(STAMP)

# Trains the default model `digits` (scikit-learn's bundled 8x8 digits) when the repository has none.
default-model: install
	@test -d $(REPOSITORY)/digits || echo "make: training the default model digits into $(REPOSITORY) (a minute or two)"
	test -d $(REPOSITORY)/digits || AESERVE_MODEL_REPOSITORY=$(REPOSITORY) \
		$(BIN)/aeserve train builtin:digits --name digits --loss bce --promote

# `aeserve serve` prints where it serves from and the address of the interactive docs (/docs).
run: default-model
	AESERVE_MODEL_REPOSITORY=$(REPOSITORY) AESERVE_DEFAULT_MODEL=$${AESERVE_DEFAULT_MODEL:-digits} \
		$(BIN)/aeserve serve --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check core service models tests bench
	$(BIN)/ruff format --check core service models tests bench
	$(BIN)/mypy core service models
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

bench: install
	$(BIN)/python -m bench.serving

# Hostile and heavy clients against real servers on loopback (bench/reliability.py; about 20
# minutes, a 10-minute soak included); writes bench/results/reliability.md.
reliability: install
	$(BIN)/python -m bench.reliability $(ARGS)

# Reads ADBench's 26 data sets from ../shared/data/adbench (or AESERVE_ADBENCH_DIR), outside the
# repository; it stops with a message saying so when they are not there (docs/quality.md).
bench-quality: install
	$(BIN)/python -m pip install --quiet -e '.[train,bench]'
	$(BIN)/python -m bench.quality $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
