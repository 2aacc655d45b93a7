# The two README commands: `make demo` and `make test`. Each creates .venv if absent and installs
# ncodec (editable, with its C++ extension) before running.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.ncodec-installed
NATIVE := pyproject.toml CMakeLists.txt $(wildcard entropy/csrc/*)

.PHONY: demo test lint format install clean

$(STAMP): $(NATIVE)
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	@$(VPY) -m pip install -q --disable-pip-version-check uv
	$(UV) pip install --python $(VPY) -q "scikit-build-core>=0.10" "nanobind>=2.0" cmake ninja
	$(UV) pip install --python $(VPY) -q --no-build-isolation-package ncodec -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VPY) -m ncodec.codec.demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint
	$(VPY) -m pytest -q

clean:
	rm -rf build $(VENV)
