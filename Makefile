# Two entry points for a fresh machine: `make smoke` (install + whole pipeline at smoke scale)
# and `make test` (install + test suite). Everything installs into ./.venv.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU-only PyTorch by default, so a laptop or CI machine does not pull several GB of CUDA
# libraries. On a GPU machine: `make install TORCH_INDEX=` (PyPI's CUDA build).
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
CORES ?= all
# Snakemake's jobs call `marlrepro`; put the environment's commands first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install smoke test report clean-results

install: $(BIN)/marlrepro

$(BIN)/marlrepro: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install "torch==$(TORCH_VERSION)" $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(BIN)/pip install -e ".[test]"
	touch $@

smoke: install
	$(BIN)/snakemake --cores $(CORES) --config scale=smoke
	$(BIN)/snakemake --cores $(CORES) --config scale=smoke --report results/report.html

test: install
	# one worker per core (at most 4), each taking whole files: the smoke DAG's tests share one run;
	# the 25 slowest tests are listed at the end (the suite's time budget is ~15 minutes on 2 cores)
	$(BIN)/pytest -n auto --maxprocesses=4 --dist loadfile --durations=25

clean-results:
	rm -rf results .snakemake
