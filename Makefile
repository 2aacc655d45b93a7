# The two README commands: `make demo` and `make test`. Each creates .venv if absent and installs
# exactly what uv.lock lists (torch & co. included), then ncodec itself, editable, with its C++
# extension built by the locked build tools. `make lock` regenerates uv.lock after a change to
# pyproject.toml's dependencies (commit both); CI installs from the lock and fails if it is stale.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
# The uv that bootstraps the environment; the lock pins the same one (dev extra), so sync keeps it.
UV_VERSION := 0.13.9
EXTRAS := --extra dev --extra eval --extra ray
STAMP := $(VENV)/.ncodec-installed
NATIVE := pyproject.toml uv.lock CMakeLists.txt $(wildcard entropy/csrc/*)
export UV_PYTHON_DOWNLOADS := never
export UV_NO_PROGRESS := 1

.PHONY: demo test lint format install lock check-lock clean

$(STAMP): $(NATIVE)
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(VPY) -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	@# the pinned build tools first: ncodec's extension builds against them (no build isolation)
	$(UV) sync --locked $(EXTRAS) --no-install-project
	$(UV) sync --locked $(EXTRAS)
	@touch $(STAMP)

install: $(STAMP)

# Fails when pyproject.toml changed without `make lock`, or .venv differs from the lock.
check-lock: $(STAMP)
	$(UV) lock --check
	$(UV) sync --locked --check $(EXTRAS)

lock:
	@test -x $(UV) || { test -x $(VPY) || $(PYTHON) -m venv $(VENV); $(VPY) -m pip install -q uv==$(UV_VERSION); }
	$(UV) lock

demo: $(STAMP)
	$(VPY) -m ncodec.codec.demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: check-lock lint
	$(VPY) -m pytest -q

clean:
	rm -rf build $(VENV)

# Coverage-guided fuzzing (atheris/libFuzzer) of the container parser and every medium's
# symbol-level decode, seeded with real streams (tests/fuzz/seeds; `tests/fuzz/make_seeds.py`
# rewrites them): `make fuzz SECONDS=600`. Prints executions, coverage and findings; a finding is
# saved in tests/fuzz/findings/; copy it to tests/fuzz/corpus/, where the suite replays it.
SECONDS ?= 60
.PHONY: fuzz
fuzz: $(STAMP)
	@mkdir -p build/fuzz-corpus tests/fuzz/findings
	-OMP_NUM_THREADS=1 $(VPY) tests/fuzz/fuzz_decode.py -max_total_time=$(SECONDS) -print_final_stats=1 \
		-artifact_prefix=tests/fuzz/findings/ build/fuzz-corpus tests/fuzz/seeds tests/fuzz/corpus 2>&1 \
		| grep -E '^(#[0-9]+[[:space:]]+(DONE|pulse|INITED)|Done|stat::|==|.*Error|.*Traceback)' ; true
	@echo "findings: $$(ls tests/fuzz/findings | wc -l) in tests/fuzz/findings/"
