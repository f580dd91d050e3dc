# Two entry points: `make run` (set up + launch the app) and `make test` (set up + ruff + pytest).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# torch/torchvision first, pinned to the wheels pip finds on this machine's disk.
TORCH := torch==2.14.1 torchvision==0.29.1

# ONNX Runtime Web for the live-drag sliders: npm installs it (exact versions from the
# committed package-lock.json) into the component's own folder, which the page loads it from
# (the wasm binary through the app's route, explorer/ort_files.py).
LIVE_SLIDERS := explorer/components/live_sliders
ORT_WEB := $(LIVE_SLIDERS)/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm.gz

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

# npm comes from Debian when root and missing (a fresh CI machine); without npm the app still
# runs, with server-side sliders and a line saying why. After this, nothing needs a network.
# The wasm is gzipped once here; the app serves the .gz as it is (explorer/ort_files.py).
$(ORT_WEB): $(LIVE_SLIDERS)/package.json $(LIVE_SLIDERS)/package-lock.json
	@command -v npm >/dev/null || [ "$$(id -u)" != 0 ] || { apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm; }
	@if command -v npm >/dev/null; then \
	  npm ci --prefix $(LIVE_SLIDERS) --ignore-scripts --no-audit --no-fund --loglevel=error \
	  && gzip -kf $(basename $@) && touch $@; \
	else echo "note: npm is missing (apt-get install npm): live drag falls back to server-side sliders"; fi

setup: $(VENV)/.installed $(ORT_WEB)

setup-test: system-deps $(VENV)/.installed-test $(ORT_WEB)

# Debian packages the tests use (Fashion-MNIST files, Chromium for the browser tests, npm for
# ONNX Runtime Web, which the live-drag tests need); installed when root and missing.
system-deps:
	@missing=""; \
	[ -d /usr/share/datasets/fashion-mnist ] || missing="$$missing dataset-fashion-mnist"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
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
	$(PY) bench/live_sliders.py
	$(PY) bench/import_model.py
