# dreamcs: every target works on a fresh clone; set-up runs itself when .venv is missing.
PY := .venv/bin/python
PIP := .venv/bin/pip
export OMP_NUM_THREADS ?= 2

.PHONY: setup demo test test-fast bench gpu-check lint clean

.venv/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	# A CPU torch first, so that pip never pulls a multi-GB CUDA build onto a CPU machine.
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install "torch==2.13.0" || $(PIP) install torch --index-url https://download.pytorch.org/whl/cpu
	$(PIP) install -e ".[test]"
	touch $@

setup: .venv/.installed

demo: setup
	$(PY) -m dreamcs.cli quickstart --out demo

test: setup
	$(PY) -m pytest -q tests

test-fast: setup
	$(PY) -m pytest -q -m "not slow" tests

bench: setup
	$(PY) benchmarks/run.py

# one GPU, under 5 minutes: tiny SD-shaped runs (with/without reward, colour, nvdiffrast, DREAMCS_SD_PATH)
gpu-check: setup
	$(PY) benchmarks/gpu_check.py

lint: setup
	.venv/bin/ruff check src tests benchmarks

clean:
	rm -rf .venv demo build dist *.egg-info
