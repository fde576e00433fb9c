# zgos: `make up` starts the whole devnet, `make test` runs the whole suite (what CI runs),
# `make test-fast` the pure cores and unit tests (the loop while developing).
# All install what they need first; a second `make install` takes seconds.

PYTHON      ?= python3.11
VENV        := .venv
BIN         := $(VENV)/bin
UV          := $(BIN)/uv
UV_VERSION  := 0.13.9
TOOLS       := .tools
ANVIL_PKG   := @foundry-rs/anvil-linux-amd64@1.7.1
ANVIL       := $(TOOLS)/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
# Built llama.cpp wheels are kept per machine, outside the work tree, so every clone
# (CI included) reuses the ~6 min build.
WHEELHOUSE  ?= $(HOME)/.cache/zgos/wheelhouse
LLAMA_VER   := 0.3.36
LLAMA_WHEEL := $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_VER)-py3-none-linux_x86_64.whl
STAMP       := $(VENV)/.install-stamp
# The optional training stack (torch CPU + transformers + peft, see requirements-train.in):
# its lock is compiled against requirements.lock, and torch's CPU wheel lies here.
TORCH_WHEELS ?= /opt/wheels
TRAIN_LOCK  := requirements-train.lock
# Pure modules checked with mypy --strict (each network adds its own core here).
STRICT      := \
  zgos/core \
  zgos/runtime \
  $(filter-out zgos/chain/cli.py,$(wildcard zgos/chain/*.py)) \
  zgos/storage/spec \
  zgos/da/spec \
  zgos/compute/spec \
  zgos/kv/spec \
  zgos/inft/spec \
  zgos/alignment/spec \
  zgos/da/signer/store.py \
  zgos/storage/scores.py zgos/storage/locations.py \
  tools/layering.py \
  tools/shape.py

# solc-js and OpenZeppelin for `make contracts` and the test that recompiles the artifacts.
SOLC        := contracts/node_modules/solc/package.json

# 0G's TypeScript SDK for the storage compatibility tests (they skip, saying why, without it).
TS_SDK_DIR  := $(TOOLS)/0g-ts-sdk
TS_SDK      := $(TS_SDK_DIR)/node_modules/@0gfoundation/0g-ts-sdk/package.json

PYTEST_ARGS ?= --durations=15
WORKERS     ?= 2

.PHONY: install up test test-fast test-deps warm lint unit contracts bench clean proto fuzz

install: $(STAMP) $(ANVIL)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(UV): $(BIN)/python
	$(BIN)/pip install -q uv==$(UV_VERSION)

$(STAMP): requirements.lock $(TRAIN_LOCK) pyproject.toml setup.py zgos/storage/_treehash.c $(LLAMA_WHEEL) | $(UV)
	$(UV) pip sync -q --python $(BIN)/python --find-links $(WHEELHOUSE) \
	  --find-links $(TORCH_WHEELS) requirements.lock $(TRAIN_LOCK)
	$(UV) pip install -q --python $(BIN)/python --no-deps -e .
	@touch $@

# Python caches what it compiles only where PYTHONDONTWRITEBYTECODE is unset. This machine
# sets it, so every process (each `zg` command, each devnet service) would compile web3, torch,
# transformers... from source again, twice the CPU of its start-up. Unset for everything make
# runs, the first process to import a module caches it (no up-front compile of all 14k files).
unexport PYTHONDONTWRITEBYTECODE

$(ANVIL):
	mkdir -p $(TOOLS)
	npm install --silent --no-audit --no-fund --prefix $(TOOLS) $(ANVIL_PKG)
	@test -x $@

$(TS_SDK): tests/compat/package.json tests/compat/package-lock.json
	mkdir -p $(TS_SDK_DIR)
	cp tests/compat/package.json tests/compat/package-lock.json $(TS_SDK_DIR)/
	cd $(TS_SDK_DIR) && npm ci --silent --no-audit --no-fund || echo "0G TS SDK not installed: storage compat tests will skip"
	@touch $@ 2>/dev/null || true

# The default llama.cpp build segfaults on these CPUs (AMX path): build portable, uncached.
$(LLAMA_WHEEL): | $(BIN)/python
	@echo "building llama-cpp-python $(LLAMA_VER) once for this machine (~6 min)"
	mkdir -p $(WHEELHOUSE)
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/python -m pip wheel -q --no-cache-dir --no-deps \
	  llama-cpp-python==$(LLAMA_VER) -w $(WHEELHOUSE)

# The devnet in the foreground; its last line points at `zg tour` (run it in another terminal).
up: install
	$(BIN)/zg devnet up --storage-nodes 3

# Headless Chromium for the explorer's browser test (Debian package; skipped visibly if absent).
test-deps:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1; } || \
	  echo "chromium not installed: the explorer's browser test will be skipped"

test: install lint test-deps warm $(TS_SDK) $(SOLC)
	$(BIN)/python -m pytest -n $(WORKERS) $(PYTEST_ARGS) || [ $$? -eq 5 ]

# Pure cores and unit tests, no slow ones: under 2 minutes.
test-fast: install
	$(BIN)/python -m pytest -n $(WORKERS) -m "not slow" $(PYTEST_ARGS) tests/unit

# The per-machine caches the suite reads (Gemma GGUF, its hash and tensor shapes) and this
# tree's bytecode, made before any test is timed (tests/warm.py).
warm: install
	$(BIN)/python -m compileall -q zgos tests bench >/dev/null
	$(BIN)/python -m tests.warm

# The dependency and size contracts last: imports point down the layers, modules <= 400 lines,
# functions <= 40 (tools/layering.py and tools/shape.py say the rules).
lint: install
	$(BIN)/ruff check zgos tests bench tools
	$(BIN)/mypy --strict $(STRICT)
	$(BIN)/python tools/layering.py
	$(BIN)/python tools/shape.py

unit: install
	$(BIN)/python -m pytest -n $(WORKERS) tests/unit

# The adversarial suite with a bigger corpus and a fresh seed (printed; rerun a failure with
# ZGOS_FUZZ_SEED=N). The suite itself runs ~1,000 cases per service with a fixed seed.
FUZZ_REQUESTS ?= 20000
FUZZ_SEED     ?= random
fuzz: install
	ZGOS_FUZZ_REQUESTS=$(FUZZ_REQUESTS) ZGOS_FUZZ_SEED=$(FUZZ_SEED) $(BIN)/python -m pytest -n 0 -s tests/adversarial

$(SOLC): contracts/package-lock.json
	cd contracts && npm ci --silent --no-audit --no-fund || echo "solc-js not installed: the recompile test will install it"
	@touch $@ 2>/dev/null || true

contracts: $(SOLC)
	cd contracts && node build.js

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(TOOLS) .zgos

# gRPC stubs of the DA network (committed; regenerate after editing a .proto).
proto: install
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. \
	  zgos/da/proto/disperser.proto zgos/da/proto/signer.proto
