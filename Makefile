# foliosim: `make demo` runs the main job on the bundled data, `make test` runs the checks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU wheel first, so that pip never pulls the multi-GB CUDA build; override e.g.
#   make TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0

.PHONY: install install-dev demo test lint typecheck bench clean

# What a user needs (`make demo`): foliosim and its runtime dependencies.
$(BIN)/foliosim: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e .
	touch $(BIN)/foliosim

# What the checks need besides (`make test`): pytest, ruff, mypy, Playwright (about 250 MB).
$(VENV)/.dev-installed: $(BIN)/foliosim
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(VENV)/.dev-installed

install: $(BIN)/foliosim

install-dev: $(VENV)/.dev-installed

demo: install
	$(BIN)/foliosim demo

lint: install-dev
	$(BIN)/ruff check simulator strategies models foliosim tests bench
	$(BIN)/ruff format --check simulator strategies models foliosim tests bench

typecheck: install-dev
	$(BIN)/mypy

# The browser tests (tear sheets; `foliosim serve` through Playwright) need Debian's chromium:
# Playwright drives it by its path, and never downloads a browser of its own.
CHROMIUM ?= /usr/bin/chromium

$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

test: lint typecheck $(CHROMIUM)
	MPLBACKEND=Agg $(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) .foliosim runs .pytest_cache .mypy_cache .ruff_cache
