# Two commands on a fresh machine: `make demo` and `make test`.
# The virtual environment is built once (pinned by constraints.txt) and reused:
# re-running a target when .venv is up to date costs seconds.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.microsweep-installed
PYTEST_ARGS ?=

.PHONY: venv test test-fast lint demo bench clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24" setuptools wheel
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	$(BIN)/python -c "import torch, torchvision.ops; torchvision.ops.nms" \
	  || { echo "torch/torchvision mismatch: reinstall with 'make clean-venv venv'"; exit 1; }
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Fast unit tests first, then the slow integration tests (real Ray, training).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not slow" -q $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]
	$(BIN)/python -m pytest -m "slow" -q $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/python -m search.demo --out demo-out

bench: $(STAMP)
	for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean-venv:
	rm -rf $(VENV)
