# dreamcs: every target works on a fresh clone; set-up runs itself when .venv is missing.
PY := .venv/bin/python
PIP := .venv/bin/pip
export OMP_NUM_THREADS ?= 2

.PHONY: setup setup-browser demo test test-fast bench gpu-check lint clean

.venv/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	# A CPU torch first, so that pip never pulls a multi-GB CUDA build onto a CPU machine.
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install "torch==2.13.0" || $(PIP) install torch --index-url https://download.pytorch.org/whl/cpu
	$(PIP) install -e ".[test]"
	touch $@

setup: .venv/.installed setup-browser

# headless Chromium + its driver from Debian, for the review web app's browser test
# (tests/data/test_review_browser.py, which skips without them); installed only as root with apt-get
setup-browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then echo "chromium: $$(/usr/bin/chromium --version 2>/dev/null)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
	  || echo "setup-browser: could not install chromium; the browser test will skip"; \
	else echo "setup-browser: no chromium and not root with apt-get; the browser test will skip"; fi

demo: .venv/.installed
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
