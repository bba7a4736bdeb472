"""The C sources of the native kernels: their argument lists are read once, their codes come from
snnc.core.dynamics, and the compiled library is cached by the source text."""

import ctypes
import re

import pytest
import torch

from snnc.core.dynamics import Charge, FireCompare, NeuronParams, ResetMode
from snnc.runtime import event_conv, native

EXPORTED = {"snnc_neuron_f32", "snnc_neuron_pool_f32", "snnc_avg_pool2d_f32", "snnc_max_pool2d_f32",
            "snnc_spike_events_f32", "snnc_level_events_f32", "snnc_event_conv2d_f32", "snnc_running_max_pool2d_f32",
            "snnc_signed_if_f32", "snnc_signed_events_f32", "snnc_event_max_tile", "snnc_event_conv2d_neuron_f32"}

needs_library = pytest.mark.skipif(not native.available(), reason=f"no native kernel: {native.why_unavailable()}")


def _all_signatures():
    return {sig.name: sig for name, text in native.sources().items() for sig in native.signatures(text, name)}


def test_every_exported_function_is_read_from_the_c_files():
    sigs = _all_signatures()
    assert set(sigs) == EXPORTED
    neuron = sigs["snnc_neuron_f32"]
    assert [n for _, n in neuron.params[:3]] == ["charge", "reset", "compare"]
    assert neuron.argtypes[:5] == [ctypes.c_int] * 3 + [ctypes.c_void_p, ctypes.c_int64]
    assert sigs["snnc_avg_pool2d_f32"].ctypes_restype is None and neuron.ctypes_restype is ctypes.c_int


def test_the_c_files_are_next_to_their_modules_in_the_installed_package():
    for name in native.SOURCES:
        assert (native.SOURCE_DIR / name).is_file(), name
    assert (native.SOURCE_DIR / "event_conv.c").parent == native.SOURCE_DIR


def test_signature_reading_refuses_what_it_cannot_map():
    ok = "int snnc_a(int a, const float* restrict x, int64_t n, float f)\n{ return 0; }\n"
    (sig,) = native.signatures(ok)
    assert sig.argtypes == [ctypes.c_int, ctypes.c_void_p, ctypes.c_int64, ctypes.c_float]
    assert sig.prototype == "int snnc_a(int a, const float* restrict x, int64_t n, float f);"
    assert native.signatures("/* int snnc_b(int a)\n{ */\nstatic int helper(int a)\n{ return a; }\n") == []
    with pytest.raises(ValueError, match="double"):
        native.signatures("int snnc_c(double d)\n{ return 0; }\n")
    with pytest.raises(ValueError, match="returns"):
        native.signatures("float snnc_d(int a)\n{ return 0; }\n")


def test_the_generated_header_holds_the_dynamics_codes_and_every_prototype():
    head = native.header(native.sources())
    for enum_cls, prefix in ((Charge, "CHARGE"), (ResetMode, "RESET"), (FireCompare, "COMPARE")):
        for m in enum_cls:
            assert f"#define SNNC_{prefix}_{m.name} {m.code}\n" in head
    combos = re.search(r"#define SNNC_NEURON_VARIANTS\(X\) (.*)", head).group(1)
    assert len(re.findall(r"X\(\d+, \d+, \d+\)", combos)) == len(Charge) * len(ResetMode) * len(FireCompare)
    for sig in _all_signatures().values():
        assert sig.prototype in head
    for name, text in native.sources().items():  # no hand-written codes or variant numbers left in C
        assert f'#include "{native.HEADER}"' in text, name
        assert not re.search(r"(charge|reset|compare) == \d", text), name


def test_codes_are_the_positions_of_the_dynamics_enums():
    assert [c.code for c in Charge] == [0, 1, 2] and [r.code for r in ResetMode] == [0, 1, 2]
    assert [f.code for f in FireCompare] == [0, 1]
    p = NeuronParams(reset=ResetMode.NONE, compare=FireCompare.GT)
    assert native.codes(p) == (Charge.IF.code, ResetMode.NONE.code, FireCompare.GT.code)


@needs_library
def test_loaded_argtypes_are_the_signatures():
    lib = native.load()
    for sig in _all_signatures().values():
        fn = getattr(lib, sig.name)
        assert fn.argtypes == sig.argtypes and fn.restype == sig.ctypes_restype, sig.name


@needs_library
def test_python_callers_pass_exactly_the_declared_arguments(monkeypatch):
    """ctypes lets a call pass extra arguments: check every wrapper against the C parameter list."""
    lib = native.load()
    calls = {}

    def checked(name, fn):
        def call(*args):
            n = len(_all_signatures()[name].params)
            assert len(args) == n, f"{name} called with {len(args)} arguments, its C definition has {n}"
            calls[name] = calls.get(name, 0) + 1
            return fn(*args)
        return call

    class Checked:
        def __getattr__(self, name):
            return checked(name, getattr(lib, name))

    monkeypatch.setattr(native, "load", lambda: Checked())
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    p = NeuronParams()
    x = torch.rand(2, 1, 2, 4, 4)
    v = torch.zeros(1, 2, 4, 4)
    native.neuron_f32(p, x, v.numel(), torch.empty_like(x), v, None, 2, v.numel(), 1.0, 1.0, 1.0, 0.0, 1.0)
    native.neuron_pool_f32(p, "max", x, v.numel(), torch.empty(2, 1, 2, 2, 2), v, 2, 4, 1, 1.0, 1.0, 1.0, 0.0, 1.0)
    native.pool2d_f32("avg", x[0], (2, 2), (2, 2, 2, 2, 0, 0, 1, 0))
    native.pool2d_f32("max", x[0], (2, 2), (2, 2, 2, 2, 0, 0, 1, 1))
    packed = event_conv.pack(torch.rand(3, 2, 3, 3), None, 1.0, (1, 1), (1, 1), (1, 1))
    event_conv.conv2d((x[0] > 0.5).float(), packed, channels_last=False)
    quarter = event_conv.pack(torch.rand(3, 2, 3, 3), None, 0.25, (1, 1), (1, 1), (1, 1))
    event_conv.conv2d(torch.nn.functional.avg_pool2d((x[0] > 0.5).float(), 2), quarter, channels_last=False,
                      levels=4)
    signed = event_conv.pack_signed(torch.rand(3, 2, 3, 3), None, 1.0, (1, 1), (1, 1), (1, 1))
    event_conv.conv2d((x[0] > 0.5).float() - (x[0] < 0.2).float(), signed, channels_last=False, signed=True)
    vc = torch.zeros(1, 3, 4, 4).contiguous(memory_format=torch.channels_last)
    event_conv.conv2d_neuron((x[:, 0] > 0.5).float().contiguous(memory_format=torch.channels_last), packed, 2,
                             event_conv.Neuron(native.codes(p), 1.0, 1.0, 1.0, 0.0, 1.0), vc)
    native.running_max_pool2d_f32(x, None)
    native.signed_if_f32(x, v.numel(), torch.empty_like(x), v.flatten(), torch.zeros(v.numel()), 2, v.numel(), 1.0)
    assert set(calls) == EXPORTED


@needs_library
def test_unknown_codes_are_an_error_not_a_wrong_answer(monkeypatch):
    monkeypatch.setattr(native, "codes", lambda p: (len(Charge), 0, 0))
    x = torch.rand(2, 8)
    v = torch.zeros(8)
    with pytest.raises(RuntimeError, match="unknown"):
        native.neuron_f32(NeuronParams(), x, 8, torch.empty_like(x), v, None, 2, 8, 1.0, 1.0, 1.0, 0.0, 1.0)


@pytest.mark.skipif(native._compiler() is None, reason="no C compiler")
def test_a_changed_c_file_is_rebuilt(tmp_path):
    cc = native._compiler()
    first = native.build(cc, tmp_path)
    assert native.build(cc, tmp_path) == first  # cached
    srcs = native.sources()
    srcs["event_conv.c"] += "\n/* changed */\n"
    second = native.build(cc, tmp_path, srcs)
    assert second != first and second.is_file()


@pytest.mark.skipif(native._compiler() is None, reason="no C compiler")
def test_a_definition_that_disagrees_with_the_generated_prototype_does_not_compile(tmp_path, monkeypatch):
    """The header declares what Python read; a misreading (here faked) is a compile error, not a bad call."""
    cc = native._compiler()
    real = native.signatures
    monkeypatch.setattr(native, "signatures", lambda text, file="<source>": [
        native.Signature(s.name, s.restype, s.params[:-1]) if s.name == "snnc_max_pool2d_f32" else s
        for s in real(text, file)])
    with pytest.raises(RuntimeError, match="snnc_max_pool2d_f32"):
        native.build(cc, tmp_path)

