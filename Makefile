# echo-napari: `make demo` opens napari with a sample sequence; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

# Xvfb when there is no display (CI, ssh): napari needs a real X server to render here.
XRUN := $(shell if [ -z "$$DISPLAY" ] && command -v xvfb-run >/dev/null; then echo "xvfb-run -a -s '-screen 0 1600x1000x24'"; fi)

.PHONY: env demo test test-fast bench lint format clean

env: $(STAMP)

$(STAMP): pyproject.toml plugins/echo-napari-simpleitk/pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# CPU build of torch where no NVIDIA GPU is present (the pinned CPU wheel, no GB download);
	# the default (CUDA) build where one is.
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	  $(PIP) install -q "torch>=2.2"; \
	else \
	  $(PIP) install -q "torch==2.13.0"; \
	fi
	$(PIP) install -q -e ".[gui,test]" "napari[pyqt5]"
	$(PIP) install -q -e plugins/echo-napari-simpleitk
	touch $(STAMP)

demo: env
	$(PY) -m echo_napari.demo

test: env
	$(XRUN) $(PY) -m pytest -q -ra

test-fast: env
	$(PY) -m pytest -q -m "not slow and not gui"

bench: env
	for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: env
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: env
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
