# Set-up and entry points. Every target does its own set-up on a fresh clone: it creates .venv/,
# installs the package (editable, with its test extra) and builds the native library.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install native deploy test soak demo clean

install: $(STAMP)

# Re-install only when the package metadata changes; a second run starts in seconds.
$(STAMP): setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
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
	$(PY) -m pytest -q

# Random SIGKILL/SIGTERM interruptions of a training run, each followed by --resume auto (make test does 2):
# BM_FAULT_TRIALS of them (about 15 s each on 2 idle cores), BM_FAULT_SEED to replay a sequence.
soak: native
	BM_FAULT_TRIALS=$${BM_FAULT_TRIALS:-30} $(PY) -m pytest -q tests/test_stopping.py -k random_times

demo: native
	$(VENV)/bin/bm demo

clean:
	rm -rf $(VENV) native/build deploy/build build demo_output
