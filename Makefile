# Set-up and entry points. Every target does its own set-up on a fresh clone: it creates a virtual
# environment, installs the package (editable, with its test extra) and builds the native library.
# One environment per interpreter: .venv/ for the default python3, .venv-3.13/ for make PYTHON=python3.13.
PYTHON ?= python3
SUPPORTED_PYTHONS := 3.11 3.12 3.13
PYTHON_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
ifeq ($(origin PYTHON),file)
VENV ?= .venv
else
VENV ?= .venv-$(PYTHON_VERSION)
endif
ifeq ($(filter $(PYTHON_VERSION),$(SUPPORTED_PYTHONS)),)
ifneq ($(filter-out clean,$(or $(MAKECMDGOALS),install)),)
$(error $(PYTHON) is $(if $(PYTHON_VERSION),Python $(PYTHON_VERSION),not found); binary_models supports Python \
  $(SUPPORTED_PYTHONS) (choose one with PYTHON=, e.g. make PYTHON=python3.13 test))
endif
endif
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Installed first, without its dependencies: its metadata pins numpy<2, and on Python 3.12+ it runs on NumPy 2
# (binary_models_compat, docs/install.md).
MXNET := mxnet==1.9.1

.PHONY: install native deploy test test-python soak demo clean

install: $(STAMP)

# Re-install only when the package metadata changes; a second run starts in seconds.
$(STAMP): setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q --no-deps $(MXNET)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[test]'
	touch $(STAMP)

native: $(STAMP)
	@if [ -f native/Makefile ]; then $(MAKE) -s -C native PYTHON=$(abspath $(PY)); fi

# deploy/build/bm-predict: a packed model served from C++, linked against the wheel's libmxnet.so; its two
# Debian packages (nlohmann-json3-dev, libssl-dev) are installed with apt-get when missing.
deploy: native
	$(MAKE) -s -C deploy deps
	$(MAKE) -s -C deploy PYTHON=$(abspath $(PY))

test: native deploy
	@if [ -f native/Makefile ]; then $(MAKE) -s -C native test test-asan PYTHON=$(abspath $(PY)); fi
	$(PY) -m pytest -q $(TESTS)

# The Python tests alone, e.g. under a second interpreter: make PYTHON=python3.13 test-python TESTS="tests/..."
test-python: native deploy
	$(PY) -m pytest -q $(TESTS)

# Random SIGKILL/SIGTERM interruptions of a training run, each followed by --resume auto (make test does 2):
# BM_FAULT_TRIALS of them (about 15 s each on 2 idle cores), BM_FAULT_SEED to replay a sequence.
soak: native
	BM_FAULT_TRIALS=$${BM_FAULT_TRIALS:-30} $(PY) -m pytest -q tests/test_stopping.py -k random_times

demo: native
	$(VENV)/bin/bm demo

clean:
	rm -rf .venv .venv-* native/build deploy/build build demo_output
