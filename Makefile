# snnc: `make demo` and `make test` each set up .venv on a fresh machine first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch; plain `pip install torch` would pull a multi-GB CUDA build.
TORCH_VERSION := 2.13.0
TORCH_WHEEL ?= /opt/wheels/torch-$(TORCH_VERSION)+cpu-cp311-cp311-manylinux_2_28_x86_64.whl

.PHONY: demo test test-lava fuzz setup clean
FUZZ_SECONDS ?= 300

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@if [ -f "$(TORCH_WHEEL)" ]; then \
		$(PY) -m pip install -q "$(TORCH_WHEEL)"; \
	else \
		echo "note: $(TORCH_WHEEL) not found; installing torch==$(TORCH_VERSION) from the index"; \
		$(PY) -m pip install -q "torch==$(TORCH_VERSION)"; \
	fi
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: setup
	$(VENV)/bin/snnc demo --out out/demo

test: setup
	$(PY) -m pytest -q -n 2 tests

# Long fuzzing run of every file reader (CI runs a short budget inside `make test`).
fuzz: setup
	$(PY) -m snnc.fuzz --seconds $(FUZZ_SECONDS)

# The Lava tests run under Python 3.10 with lava-nc/lava-dl (scripts/lava_env.sh builds .venv-lava);
# the snnc side runs in .venv. LAVA_ENV_FLAGS=--full adds torch 2.3 + slayer (~5.6 GB) for the slayer tests.
LAVA_ENV_FLAGS ?=
test-lava: setup
	scripts/lava_env.sh $(LAVA_ENV_FLAGS)
	SNNC_PYTHON=$(abspath $(PY)) .venv-lava/bin/python -m pytest -q -m lava --confcutdir=tests/lava -p no:cacheprovider tests/lava

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
