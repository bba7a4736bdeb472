# snnc: `make demo` and `make test` each set up .venv on a fresh machine first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch; plain `pip install torch` would pull a multi-GB CUDA build.
TORCH_VERSION := 2.13.0
TORCH_WHEEL ?= /opt/wheels/torch-$(TORCH_VERSION)+cpu-cp311-cp311-manylinux_2_28_x86_64.whl

.PHONY: demo test test-lava fuzz setup clean figures FORCE
FUZZ_SECONDS ?= 300

setup: $(VENV)/.installed

# snnc is installed in strict editable mode (setup.cfg): a link tree in build/ that must exist,
# so setup runs again when it is gone.
EDITABLE_TREE := $(wildcard build/__editable__.snnc-*)
$(VENV)/.installed: pyproject.toml setup.cfg Makefile $(if $(EDITABLE_TREE),,FORCE)
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

# Regenerate the README's demo figures on this machine (FIGURES_FLAGS= adds the CPU speed table, slow).
FIGURES_FLAGS ?= --demo-only
figures: setup
	$(PY) scripts/readme_figures.py --write $(FIGURES_FLAGS)

test: setup
	$(PY) -m pytest -q -n 2 tests

# Long fuzzing run of every file reader (CI runs a short budget inside `make test`). Failing cases are
# saved under fuzz-failures/ ($SNNC_FUZZ_OUT); `$(PY) -m snnc.fuzz --replay FILE` reruns one.
FUZZ_SEED ?= 0
fuzz: setup
	$(PY) -m snnc.fuzz --seconds $(FUZZ_SECONDS) --seed $(FUZZ_SEED)

# The Lava tests run under Python 3.10 with lava-nc/lava-dl (scripts/lava_env.sh builds .venv-lava);
# the snnc side runs in .venv. LAVA_ENV_FLAGS=--full adds torch 2.3 + slayer (~5.6 GB) for the slayer tests.
LAVA_ENV_FLAGS ?=
test-lava: setup
	scripts/lava_env.sh $(LAVA_ENV_FLAGS)
	SNNC_PYTHON=$(abspath $(PY)) .venv-lava/bin/python -m pytest -q -m lava --confcutdir=tests/lava -p no:cacheprovider tests/lava

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
