"""`import snnc` makes torch's OpenMP workers wait passively (snnc/__init__.py), only when it can take effect
(torch not yet loaded) and never over a value the user set."""

import os
import subprocess
import sys

import pytest

PROBE = "import os, sys; {pre}import snnc; print(os.environ.get('OMP_WAIT_POLICY', '-'), snnc.OPENMP_POLICY_SET)"


def _policy(pre: str = "", **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    r = subprocess.run([sys.executable, "-c", PROBE.format(pre=pre)], capture_output=True, text=True,
                       env={**base, **env}, timeout=120, check=True)
    return r.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("pre,env,want", [
    ("", {}, "PASSIVE True"),  # set before torch loads
    ("", {"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE False"),  # the user's value is kept
    ("import torch; ", {}, "- False"),  # too late to matter: left unset rather than claiming an effect
])
def test_import_sets_the_wait_policy_only_where_it_applies(pre, env, want):
    assert _policy(pre, **env) == want
