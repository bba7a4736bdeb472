"""Short fuzzing budget for CI (the long one is `make fuzz`): mutated files give a result or an snnc error."""

import random

from snnc.fuzz import fuzz, mutate


def test_mutations_change_the_bytes():
    rng = random.Random(0)
    base = b'\x89HDF\r\n\x1a\n' + b'{"name":"g","nodes":[{"kind":"relu","shape":[1,2]}]}' + bytes(100)
    changed = sum(mutate(base, rng)[0] != base for _ in range(50))
    assert changed >= 40


def test_snnir_fuzz_short_budget():
    rep = fuzz(["snnir"], cases=600, seed=1, time_limit=10.0)
    assert rep.cases == 600 and rep.rejected > 100 and rep.ok > 0
    assert not rep.failures, "\n".join(rep.failures[:5])
