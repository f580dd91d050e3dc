# Two entry points: `make run` (set up + launch the app) and `make test` (set up + ruff + pytest).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# torch/torchvision first, pinned to the wheels pip finds on this machine's disk.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: run test setup setup-test system-deps lint bench

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PIP) install -q -e ".[test]"
	touch $@

setup: $(VENV)/.installed

setup-test: $(VENV)/.installed-test system-deps

# Debian packages the tests use (Fashion-MNIST files, Chromium, Node.js for the JS decoder's
# parity test); installed when root and missing.
system-deps:
	@missing=""; \
	[ -d /usr/share/datasets/fashion-mnist ] || missing="$$missing dataset-fashion-mnist"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else echo "note: missing Debian packages:$$missing (install them as root)"; fi; \
	fi

run: setup
	$(VENV)/bin/streamlit run explorer/app.py

lint: setup-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: setup-test lint
	$(PY) -m pytest

bench: setup-test
	$(PY) bench/train_throughput.py
	$(PY) bench/overhead.py
	$(PY) bench/model_quality.py
	$(PY) bench/cold_start.py
	$(PY) bench/ui_latency.py
	$(PY) bench/live_drag.py
	$(PY) bench/import_model.py
