"""The Triton kernels take the codes of snnc.core.dynamics, the same the C kernels take."""

import pytest

from snnc.core.dynamics import Charge, FireCompare, NeuronKind, NeuronParams, ResetMode

pytest.importorskip("triton")


def test_device_function_constants_are_the_dynamics_codes():
    from snnc.runtime.triton import dynamics as kernels

    assert kernels.CHARGE_IF.value == Charge.IF.code and kernels.CHARGE_LIF.value == Charge.LIF.code
    assert kernels.RESET_HARD.value == ResetMode.HARD.code and kernels.RESET_SOFT.value == ResetMode.SOFT.code
    assert kernels.COMPARE_GT.value == FireCompare.GT.code


@pytest.mark.parametrize("charge", list(Charge))
@pytest.mark.parametrize("reset", list(ResetMode))
@pytest.mark.parametrize("compare", list(FireCompare))
def test_spec_passes_the_codes(charge, reset, compare):
    from snnc.runtime import native
    from snnc.runtime.triton.spec import NeuronSpec

    kind = NeuronKind.IF if charge is Charge.IF else NeuronKind.LIF
    p = NeuronParams(kind, reset=reset, compare=compare, decay_input=charge is not Charge.LIF_NO_DECAY_INPUT)
    flags = NeuronSpec(p).constexprs()
    assert (flags["CHARGE"], flags["RESET"], flags["COMPARE"]) == (charge.code, reset.code, compare.code)
    assert native.codes(p) == (charge.code, reset.code, compare.code)
