# thesis_jax: every target sets up what it needs, then runs. A second run reuses .venv.
#
#   make demo        the tour of every method on its offline preset -> runs/tour/index.html
#                    (BUDGET=3: each section trains three times longer)
#   make test        the fast test suite (under 5 minutes on 2 cores), then the binaries end to
#                    end: each default preset for 5 steps as a user first runs it (smoke) and
#                    each binary's reports, resumption and packaging on tiny settings (e2e);
#                    what CI runs
#   make test-smoke  the smoke and e2e tests alone
#   make test-slow   the long tests (real training runs, full benchmark evaluations)
#   make bench       speed benchmarks: one summary table of every comparison (DANN step and
#                    warp vs PyTorch, JaxPaint vs libmypaint, N4-Fields inference; also
#                    runs/bench/summary.json), then SPIRAL training, Ray with 1, 2, 4 actors,
#                    N4-Fields' speed and BSDS scores by stride, gaze correction fps and how
#                    far it moves real eyes (gaze_gain.py)
#   make device-wheels  what benchmarks/device_check.sh (the same table on a lent GPU) carries
#   make lint        ruff check + format check

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Debian packages the project uses: fonts (Syn Numbers), libmypaint and its brushes (SPIRAL's
# paint environment), OSMesa and EGL (MuJoCo's offscreen rendering on CPU / GPU), g++ (JaxPaint's
# compiled CPU stroke kernel, built on first use).
SYSTEM_PACKAGES := fonts-dejavu-core libmypaint-1.5-1 mypaint-brushes libosmesa6 libegl1 g++
# The first Python >= 3.12 found: python3.12, pyenv's, then python3.13 / python3.
PYTHON ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 \
	/root/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12 \
	python3.13 python3; do \
	"$$p" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null && { echo "$$p"; break; }; \
	done)
PYTEST_WORKERS ?= 2
# make demo BUDGET=3: every section of the tour trains three times longer
BUDGET ?= 1

.PHONY: demo test test-smoke test-slow bench device-wheels lint system-packages clean

system-packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing; \
	  else \
	    echo "missing Debian packages; run:  sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

$(PY):
	@if [ -z "$(PYTHON)" ]; then echo "need Python >= 3.12 (python3.12 not found)"; exit 1; fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# One stamp per set of extras; reinstalled when pyproject.toml changes.
$(VENV)/.installed-%: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[$(subst +,$(comma),$*)]"
	@# MediaPipe's declared numpy<2 / protobuf<5 clash with jax and tensorflow (pyproject.toml, gaze)
	@if [[ "+$*+" == *+gaze+* ]]; then $(PY) -m pip install -q --no-deps mediapipe==0.10.21; fi
	@touch $@

comma := ,

demo: system-packages $(VENV)/.installed-tensorboard+mujoco
	$(PY) -m experiments.tour --workdir=runs/tour --budget=$(BUDGET)

# The PyTorch venv lets the benchmark's model-parity tests run; they skip (with the reason) if it
# cannot be built. Each stage ends with its 15 slowest tests (the fast suite's budget: 5 minutes).
test: system-packages $(VENV)/.installed-tfds+mujoco+nn+gaze+ray+dev
	-@$(MAKE) -s $(VENV)-torch/bin/python
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal --durations=15
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal -m "smoke or e2e" --durations=15

test-smoke: system-packages $(VENV)/.installed-tfds+mujoco+nn+gaze+ray+dev
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal -m "smoke or e2e"

test-slow: system-packages $(VENV)/.installed-tfds+mujoco+nn+gaze+ray+dev
	$(PY) -m pytest -q -m slow

# PyTorch (CPU) for the comparison lives in its own venv: the CPU wheel on this kind of machine
# is built for Python 3.11; elsewhere pip takes it from the PyTorch CPU index.
$(VENV)-torch/bin/python:
	@py=$$(for p in python3.11 $$HOME/.pyenv/versions/3.11*/bin/python3.11 /root/.pyenv/versions/3.11*/bin/python3.11 python3; do \
	  "$$p" -c 'import sys' 2>/dev/null && { echo "$$p"; break; }; done); \
	$$py -m venv $(VENV)-torch && \
	{ $(VENV)-torch/bin/pip install -q torch==2.13.0 2>/dev/null \
	  || $(VENV)-torch/bin/pip install -q torch --index-url https://download.pytorch.org/whl/cpu; } \
	|| { echo "PyTorch could not be installed; the benchmark reports JAX alone"; rm -rf $(VENV)-torch; }

bench: system-packages $(VENV)/.installed-mujoco+gaze+ray+dev
	-@$(MAKE) -s $(VENV)-torch/bin/python
	@mkdir -p runs/bench
	$(PY) benchmarks/summary.py --reports=runs/bench --json-out=runs/bench/summary.json
	$(PY) benchmarks/spiral_train.py
	$(PY) benchmarks/spiral_scaling.py
	$(PY) benchmarks/n4fields.py
	$(PY) benchmarks/n4fields_stride.py --json-out=runs/bench/n4fields_stride.json
	$(PY) benchmarks/gaze.py
	$(PY) benchmarks/gaze_gain.py

# The wheels benchmarks/device_check.sh installs on a lent GPU machine, which has no network and
# lacks only these of the benchmarks' needs (pure Python; .whl/ is ignored, carried by the call).
device-wheels: $(VENV)/.installed-dev
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
	  "ml-collections==$$($(PY) -c 'import importlib.metadata as m; print(m.version("ml-collections"))')"

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf runs .pytest_cache .ruff_cache
