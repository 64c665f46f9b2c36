# deepfill: `make demo` and `make test` set up everything they need in .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Pinned: on these machines this version resolves to a local CPU wheel; a bare `torch` would
# pull gigabytes of CUDA packages.
TORCH_PIN ?= torch==2.13.0

.PHONY: setup setup-dev demo test test-all browser-deps clean

setup: $(VENV)/.core
setup-dev: $(VENV)/.dev

$(VENV)/.core: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.dev: $(VENV)/.core
	$(PY) -m pip install -q -e ".[serve,eval,train,dev,photoset]"
	touch $@

demo: setup
	$(PY) scripts/demo.py --out demo-output

# Installs Debian's chromium for the browser test when possible; without it that test skips.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  (apt-get install -y -q chromium >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) \
	  || echo "note: could not install chromium; the browser test will be skipped"; }

test: setup-dev browser-deps
	$(PY) -m pytest -q

# Everything, including the slow checks CI skips.
test-all: setup-dev browser-deps
	$(PY) -m pytest -q -m ""

clean:
	rm -rf $(VENV) demo-output .pytest_cache
