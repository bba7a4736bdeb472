"""One session protocol for every runtime: the registered sessions follow it; artifacts open by their target."""

import inspect
import json
import warnings

import pytest
import torch

import snnc
from snnc.core.errors import InputError
from snnc.ir.formats.artifact import Artifact
from snnc.runtime import LoihiSession, RuntimeSession, Session, open_session
from snnc.runtime.protocol import SESSION_OPENERS


def _takes_inputs_and_T(method) -> bool:
    params = list(inspect.signature(method).parameters.values())[1:]  # after self
    return (len(params) >= 2 and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD)
            and params[1].name == "T" and params[1].default is None)


def test_every_registered_session_class_has_the_protocol_methods():
    assert {"snnir", "cpu", "triton", "lynxi", "nir", "lava"} <= set(SESSION_OPENERS)
    classes = set(SESSION_OPENERS.values())
    assert classes == {Session, LoihiSession}
    for cls in classes:
        for name in ("run", "predict"):
            assert _takes_inputs_and_T(getattr(cls, name)), f"{cls.__name__}.{name}"


@pytest.fixture
def snn(small_cnn):
    return snnc.convert(small_cnn, torch.rand(8, 1, 8, 8), "max")


def test_each_target_opens_in_its_runtime_which_follows_the_protocol(tmp_path, snn):
    x = torch.rand(2, 1, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lava: the soft reset becomes Loihi's reset to 0, said in a warning
        sessions = {t: snnc.load(snnc.compile(snn, t, tmp_path / t, time_steps=3)) for t in ("cpu", "lava")}
    assert type(sessions["cpu"]) is Session and type(sessions["lava"]) is LoihiSession
    for target, s in sessions.items():
        assert isinstance(s, RuntimeSession), target  # structurally: graph, run, predict
        out = s.run(x, 3)
        assert out.shape[:2] == (3, 2), target
        assert s.predict(x, 3).shape == (2,), target
    assert sessions["cpu"].graph is not None


def test_load_takes_the_artifact_compile_returned(tmp_path, snn):
    art = snnc.compile(snn, "cpu", tmp_path / "a")
    assert type(snnc.load(art)) is Session and type(open_session(art)) is Session


def test_an_unknown_target_is_one_clear_error(tmp_path, snn):
    art = snnc.compile(snn, "cpu", tmp_path / "a").path
    m = json.loads((art / "manifest.json").read_text())
    (art / "manifest.json").write_text(json.dumps({**m, "target": "quantum"}))  # the manifest is not checksummed
    opened = Artifact.open(art)
    assert opened.target == "quantum"
    for call in (lambda: snnc.load(art), lambda: open_session(opened)):
        with pytest.raises(InputError, match=r"no runtime runs 'quantum' artifacts \(runtimes exist for: .*cpu"):
            call()
