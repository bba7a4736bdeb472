#!/usr/bin/env bash
# Make the optional Lava environment that snnc's `lava`-marked tests run in.
#
#   scripts/lava_env.sh            light: lava-nc 0.10.0 + lava-dl 0.6.0 without their
#                                  dependencies, plus numpy<2, scipy, h5py, networkx<=2.8.7,
#                                  asteval, pytest (~20 s, ~0.4 GB). Enough to read NetX hdf5
#                                  files and run them on Lava's CPU simulator (Loihi2SimCfg,
#                                  fixed point). No torch, so no lava.lib.dl.slayer.
#   scripts/lava_env.sh --full     everything lava-dl declares, including torch 2.3.1 from PyPI
#                                  (~5.6 GB, ~2 min): lava.lib.dl.slayer blocks and their
#                                  export_hdf5. snnc itself is installed too (no deps), so
#                                  snnc.backends.lava.to_blocks runs next to slayer.
#
# lava-nc 0.10 / lava-dl 0.6 need Python 3.10 (3.11 fails at import), torch < 2.4 and
# numpy < 2, so they cannot share snnc's main .venv. Options:
#   --venv DIR      where to build it (default: .venv-lava in the repository root)
#   LAVA_PYTHON=... the Python 3.10 interpreter to use (default: python3.10, then pyenv's)
# Running it again is a no-op once the requested recipe is installed (a marker file
# in the venv records it); --full upgrades a light venv in place.
#
# In the light venv, `lava.lib.dl.netx` still imports torch in two optional places. The
# test harness (tests/lava/conftest.py) then installs a documented stub in sys.modules;
# nothing of that stub is installed here.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-lava"
FULL=0
while [ $# -gt 0 ]; do
    case "$1" in
        --full) FULL=1 ;;
        --venv) VENV="$2"; shift ;;
        -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "lava_env.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done

LAVA_PINS=(lava-nc==0.10.0 lava-dl==0.6.0)
LIGHT_DEPS=("numpy>=1.24.4,<2" "scipy>=1.10.1,<2" "h5py>=3.7,<4" "networkx<=2.8.7" "asteval>=0.9.31,<0.10" "pytest>=7.2,<8")
# opencv pinned so pip does not download and discard ~180 MB while it backtracks.
FULL_EXTRA=("opencv-python-headless<4.12" "pytest>=7.2,<8")
# snnc's own import-time needs (no torch: the full recipe brings torch 2.3.1).
SNNC_DEPS=("pydantic>=2.5,<3" "typer>=0.12" "rich>=13")

is_py310() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1; }

find_python() {
    local cands=()
    [ -n "${LAVA_PYTHON:-}" ] && cands+=("$LAVA_PYTHON")
    cands+=(python3.10)
    if command -v pyenv >/dev/null 2>&1; then
        cands+=("$(pyenv root)"/versions/3.10*/bin/python3.10)
    fi
    cands+=("$HOME"/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10)
    for c in "${cands[@]}"; do
        if is_py310 "$c"; then echo "$c"; return 0; fi
    done
    return 1
}

recipe="light"; [ "$FULL" = 1 ] && recipe="full"
marker_light="$VENV/.snnc-lava-light"
marker_full="$VENV/.snnc-lava-full"
if [ -f "$marker_full" ] || { [ "$recipe" = light ] && [ -f "$marker_light" ]; }; then
    echo "lava env $VENV is up to date ($( [ -f "$marker_full" ] && echo full || echo light))"
    exit 0
fi

PY310="$(find_python)" || {
    echo "lava_env.sh: no Python 3.10 found (lava-nc 0.10 needs exactly 3.10)." >&2
    echo "  install one (e.g. 'pyenv install 3.10') or point LAVA_PYTHON at it." >&2
    exit 3
}
start=$SECONDS
if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV with $PY310"
    "$PY310" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)

if [ "$recipe" = light ]; then
    echo "installing the light recipe (lava-nc, lava-dl without dependencies) ..."
    "${PIP[@]}" --no-deps "${LAVA_PINS[@]}"
    "${PIP[@]}" "${LIGHT_DEPS[@]}"
else
    echo "installing the full recipe (lava-nc, lava-dl with torch 2.3.1; ~3 GB download) ..."
    "${PIP[@]}" "${LAVA_PINS[@]}" "${FULL_EXTRA[@]}"
    "${PIP[@]}" "${SNNC_DEPS[@]}"
    "${PIP[@]}" --no-deps -e "$ROOT"
fi

# Self-test: the Lava CPU models and h5py import (and slayer with the full recipe).
"$VENV/bin/python" - "$recipe" <<'PY'
import sys
import h5py  # noqa: F401
import lava.proc.lif.models  # noqa: F401
import lava.proc.dense.models  # noqa: F401
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: F401
if sys.argv[1] == "full":
    import lava.lib.dl.netx  # noqa: F401
    import lava.lib.dl.slayer  # noqa: F401
    import snnc.ir  # noqa: F401
print("lava env self-test passed")
PY
touch "$VENV/.snnc-lava-$recipe"
[ "$recipe" = full ] && touch "$marker_light"
echo "lava env ready: $VENV ($recipe, $((SECONDS - start)) s, $(du -sh "$VENV" | cut -f1))"
