"""The reset field of IR neurons is snnc.core.dynamics' ResetMode with its parameter; .snnir keeps its form."""

import pytest

from snnc.core.dynamics import Charge, FireCompare, NeuronKind, NeuronParams, ResetMode, reset_from_v_reset
from snnc.ir import ops

# A neuron node as .snnir files written before the reset field became a ResetMode stored it.
OLD_FORM = [
    ({"kind": "hard", "v_reset": -0.25}, ResetMode.HARD, -0.25),
    ({"kind": "soft"}, ResetMode.SOFT, 0.0),
    ({"kind": "none"}, ResetMode.NONE, 0.0),
]


def test_every_reset_mode_has_one_ir_class_whose_kind_is_its_value():
    assert set(ops.RESETS) == set(ResetMode)
    for mode, cls in ops.RESETS.items():
        assert cls.mode is mode and cls().kind == mode.value


@pytest.mark.parametrize("stored, mode, v_reset", OLD_FORM)
def test_old_form_nodes_load_and_save_unchanged(stored, mode, v_reset):
    node = {"kind": "lif", "name": "n", "inputs": ["x"], "loc": None, "v_threshold": 1.0, "reset": stored,
            "fire": "gt", "v_init": None, "tau": 3.0, "decay_input": False}
    op = ops.OP_ADAPTER.validate_python(node)
    p = op.to_params()
    assert (p.reset, p.v_reset, p.compare, p.charge) == (mode, v_reset, FireCompare.GT, Charge.LIF_NO_DECAY_INPUT)
    assert op.model_dump(mode="json") == node


@pytest.mark.parametrize("mode", list(ResetMode))
def test_reset_of_and_to_params_are_inverse(mode):
    p = NeuronParams(NeuronKind.IF, 1.0, mode, -0.5 if mode is ResetMode.HARD else 0.0)
    op = ops.IF(name="n", inputs=("x",), reset=ops.reset_of(p.reset, p.v_reset), fire=p.compare)
    assert op.to_params() == p


def test_spikingjelly_v_reset_is_read_once():
    assert reset_from_v_reset(None) == (ResetMode.SOFT, 0.0)
    assert reset_from_v_reset(-1) == (ResetMode.HARD, -1.0)


def test_charge_is_kind_and_decay_input_together():
    assert NeuronParams(NeuronKind.IF, decay_input=False).charge is Charge.IF
    assert NeuronParams(NeuronKind.LIF).charge is Charge.LIF
    assert NeuronParams(NeuronKind.LIF, decay_input=False).charge is Charge.LIF_NO_DECAY_INPUT
