"""Output paths never lose a user's data, and artifacts are checked before use (issue 15).

`-o`/`--out`/`output=` may be a new path, an empty folder or an earlier snnc output
of the same kind; anything else is refused with one `error:` line and exit code 7
unless `--force`, and a device, pipe or socket is refused even then. Concurrent
writers all succeed and leave one complete output; killed writers' temporaries are
removed by the next write. Every artifact file is checksummed in the manifest and
checked on load; manifest paths may not leave the folder.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import snnc
from snnc.ir.formats.artifact import Artifact, file_digest, is_artifact_folder
from snnc.core.errors import MalformedFileError, OutputPathError, UnsafeFileReferenceError
from snnc.core.fileio import atomic_path, check_destination, clean_stale
from snnc.ir import save

ROOT = Path(__file__).resolve().parents[1]
posix_only = pytest.mark.skipif(os.name != "posix", reason="FIFOs, sockets and PIDs in names are POSIX")


@pytest.fixture(scope="module")
def snn():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    return snnc.convert(model, torch.rand(32, 16), "max", show_progress=False)


@pytest.fixture
def snn_file(tmp_path, snn):
    path = tmp_path / "in" / "snn.snnir"
    path.parent.mkdir()
    save(snn, path)
    return path


@pytest.fixture
def users_folder(tmp_path):
    """A folder of a user's own work: a file and a subfolder."""
    folder = tmp_path / "work" / "thesis"
    (folder / "figures").mkdir(parents=True)
    (folder / "thesis.tex").write_text("\\section{Results}\n")
    (folder / "figures" / "fig1.pdf").write_bytes(b"%PDF-1.4 figure")
    return folder


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` (relative) with its bytes (None for folders)."""
    return {p.relative_to(folder).as_posix(): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


def cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Run the `snnc` entry point in this process; (exit code, stdout, stderr)."""
    from snnc.cli import main

    monkeypatch.setattr(sys, "argv", ["snnc", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_error(code: int, out: str, err: str, *names: str, exit_code: int = 7) -> str:
    """Exit code `exit_code`, exactly one `error:` line naming `names`, no traceback; returns that line."""
    text = out + err
    lines = [line for line in text.splitlines() if line.startswith("error:")]
    assert code == exit_code, text
    assert len(lines) == 1 and "Traceback" not in text, text
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


# ------------------------------------------------------------------ snnc compile --dump-dir
def test_dump_dir_refuses_a_users_folder_and_replaces_an_earlier_dump(tmp_path, monkeypatch, capsys, snn_file,
                                                                     users_folder):
    before = tree(users_folder)
    r = cli(monkeypatch, capsys, "compile", snn_file, "-o", tmp_path / "a1", "--dump-dir", users_folder)
    assert_one_error(*r, str(users_folder), "thesis.tex", "IR dump folder")
    assert tree(users_folder) == before and not (tmp_path / "a1").exists()
    dumps = tmp_path / "dumps"
    code, _, err = cli(monkeypatch, capsys, "compile", snn_file, "-o", tmp_path / "a1", "--dump-dir", dumps)
    assert code == 0, err
    first = sorted(os.listdir(dumps))
    assert first[0] == "00-input.txt" and len(first) >= 2
    (dumps / "99-from-a-longer-pipeline.txt").write_text("stale")
    code, _, err = cli(monkeypatch, capsys, "compile", snn_file, "-o", tmp_path / "a1", "--dump-dir", dumps)
    assert code == 0, err
    assert sorted(os.listdir(dumps)) == first  # the stale dump is gone, nothing else is left
    # --force writes the dumps into the user's folder, and removes none of the user's files
    code, _, err = cli(monkeypatch, capsys, "compile", snn_file, "-o", tmp_path / "a1", "--dump-dir", users_folder,
                       "--force")
    assert code == 0, err
    assert {k: v for k, v in tree(users_folder).items() if k in before} == before
    assert "00-input.txt" in os.listdir(users_folder)


# ------------------------------------------------------------------ snnc compile -o
def test_compile_refuses_a_users_folder_and_keeps_it(tmp_path, monkeypatch, capsys, snn_file, users_folder):
    before = tree(users_folder)
    r = cli(monkeypatch, capsys, "compile", snn_file, "-o", users_folder)
    line = assert_one_error(*r, str(users_folder), "thesis.tex")
    assert "--force" in r[2] and "not a snnc artifact" in line
    assert tree(users_folder) == before
    assert sorted(os.listdir(users_folder.parent)) == ["thesis"]  # no temporary left beside it
    # the Python API refuses the same way
    with pytest.raises(OutputPathError, match="not a snnc artifact"):
        snnc.compile(snnc.ir.load(snn_file), "cpu", users_folder)
    assert tree(users_folder) == before
    # --force replaces it (the user asked for it)
    code, _, err = cli(monkeypatch, capsys, "compile", snn_file, "-o", users_folder, "--force")
    assert code == 0, err
    assert Artifact.open(users_folder).target == "cpu" and not (users_folder / "thesis.tex").exists()
    assert sorted(os.listdir(users_folder.parent)) == ["thesis"]


def test_compile_replaces_an_earlier_artifact_and_fills_an_empty_folder(tmp_path, monkeypatch, capsys, snn_file, snn):
    out = tmp_path / "art"
    out.mkdir()  # empty: may be used
    assert cli(monkeypatch, capsys, "compile", snn_file, "-o", out)[0] == 0
    first = tree(out)
    assert cli(monkeypatch, capsys, "compile", snn_file, "-o", out, "-T", "7")[0] == 0  # an artifact: replaced
    assert tree(out) != first and Artifact.open(out).manifest["time_steps"] == 7
    snnc.compile(snn, "cpu", out)  # the API too
    assert Artifact.open(out).manifest["time_steps"] is None
    # a note the user put inside an artifact makes it theirs: refused, note kept
    (out / "notes.txt").write_text("keep me")
    r = cli(monkeypatch, capsys, "compile", snn_file, "-o", out)
    assert_one_error(*r, str(out), "notes.txt")
    assert (out / "notes.txt").read_text() == "keep me" and sorted(os.listdir(tmp_path)) == ["art", "in"]


def test_compile_to_an_existing_file_is_refused(tmp_path, monkeypatch, capsys, snn_file):
    target = tmp_path / "results.csv"
    target.write_text("a,b\n1,2\n")
    r = cli(monkeypatch, capsys, "compile", snn_file, "-o", target)
    assert_one_error(*r, str(target), "a file")
    assert target.read_text() == "a,b\n1,2\n" and sorted(os.listdir(tmp_path)) == ["in", "results.csv"]
    assert cli(monkeypatch, capsys, "compile", snn_file, "-o", target, "--force")[0] == 0
    assert Artifact.open(target).target == "cpu"


def test_compile_under_a_file_or_a_read_only_folder_is_one_line(tmp_path, monkeypatch, capsys, snn_file):
    (tmp_path / "plain").write_text("x")
    r = cli(monkeypatch, capsys, "compile", snn_file, "-o", tmp_path / "plain" / "art")
    assert_one_error(*r, str(tmp_path / "plain" / "art"))
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):  # root ignores permissions: make the folder refuse like a read-only one
            import tempfile

            def refuse(*a, dir=None, **k):
                raise PermissionError(13, "Permission denied", str(dir))

            monkeypatch.setattr(tempfile, "mkdtemp", refuse)
        r = cli(monkeypatch, capsys, "compile", snn_file, "-o", ro / "art")
        assert "Permission denied" in assert_one_error(*r, str(ro / "art"))
    finally:
        ro.chmod(0o755)
    assert os.listdir(ro) == []


@posix_only
@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["fifo", "socket", "device"])
def test_special_files_are_never_written_even_with_force(tmp_path, monkeypatch, capsys, snn_file, snn, kind):
    node = tmp_path / "node"
    if kind == "fifo":
        os.mkfifo(node)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(node))
    else:
        try:
            os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
        except (PermissionError, OSError):
            pytest.skip("creating a device node needs CAP_MKNOD")
    link = tmp_path / "link"
    link.symlink_to(node)
    mode = os.lstat(node).st_mode
    for dst in (node, link):
        for cmd in (["compile", snn_file, "-o", dst], ["convert", snn_file, "--calib", "x.npy", "-o", dst]):
            r = cli(monkeypatch, capsys, *cmd, "--force")
            assert "snnc never writes to devices, pipes or sockets" in assert_one_error(*r, str(dst))
        with pytest.raises(OutputPathError):
            save(snn, dst, force=True)
        with pytest.raises(OutputPathError):
            snnc.compile(snn, "cpu", dst, force=True)
    assert os.lstat(node).st_mode == mode and os.path.islink(link)
    assert sorted(os.listdir(tmp_path)) == ["in", "link", "node"]


def test_dev_null_is_refused_without_opening_it():
    with pytest.raises(OutputPathError, match="character device"):
        check_destination("/dev/null", force=True)
    with pytest.raises(OutputPathError, match="character device"):
        check_destination("/dev/null", directory=True, force=True)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@posix_only
def test_a_symlink_is_replaced_only_with_force_and_its_target_is_kept(tmp_path, monkeypatch, capsys, snn_file,
                                                                        users_folder):
    link = tmp_path / "out"
    link.symlink_to(users_folder)
    before = tree(users_folder)
    r = cli(monkeypatch, capsys, "compile", snn_file, "-o", link)
    assert "symbolic link" in assert_one_error(*r, str(link))
    assert link.is_symlink() and tree(users_folder) == before
    assert cli(monkeypatch, capsys, "compile", snn_file, "-o", link, "--force")[0] == 0
    assert not link.is_symlink() and Artifact.open(link).target == "cpu"
    assert tree(users_folder) == before  # the link was replaced, not what it pointed to


# ------------------------------------------------------------------ convert, run, report, demo
def test_convert_replaces_only_a_snnir_file(tmp_path, monkeypatch, capsys, snn, snn_file):
    ann = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    save(snnc.trace(ann, (16,)), tmp_path / "ann.snnir")
    np.save(tmp_path / "calib.npy", np.random.rand(16, 16).astype(np.float32))
    mine = tmp_path / "model.onnx"
    mine.write_bytes(b"my onnx model")
    args = ["convert", tmp_path / "ann.snnir", "--calib", tmp_path / "calib.npy"]
    r = cli(monkeypatch, capsys, *args, "-o", mine)
    assert ".snnir file" in assert_one_error(*r, str(mine))
    assert mine.read_bytes() == b"my onnx model"
    with pytest.raises(OutputPathError):
        save(snn, mine)
    # an earlier .snnir (recognised by its content, not its name) is replaced
    earlier = tmp_path / "earlier.bin"
    save(snn, earlier)
    before = earlier.read_bytes()
    assert cli(monkeypatch, capsys, *args, "-o", earlier)[0] == 0
    assert earlier.read_bytes() != before and snnc.ir.load(earlier).inputs
    assert cli(monkeypatch, capsys, *args, "-o", mine, "--force")[0] == 0
    assert snnc.ir.load(mine).inputs and sorted(os.listdir(tmp_path)) == ["ann.snnir", "calib.npy", "earlier.bin",
                                                                           "in", "model.onnx"]


def test_run_replaces_only_an_earlier_runs_outputs(tmp_path, monkeypatch, capsys, snn):
    art = snnc.compile(snn, "cpu", tmp_path / "art").path
    np.savez(tmp_path / "inputs.npz", x=np.random.rand(3, 16).astype(np.float32))
    run = ["run", art, "-i", tmp_path / "inputs.npz", "-T", "4"]
    assert cli(monkeypatch, capsys, *run, "-o", tmp_path / "outputs.npz")[0] == 0
    assert cli(monkeypatch, capsys, *run, "-o", tmp_path / "outputs.npz")[0] == 0  # the same outputs: replaced
    # the inputs (other arrays) or any other file are not outputs of this run
    for dst in (tmp_path / "inputs.npz", tmp_path / "art"):
        before = tree(tmp_path)
        r = cli(monkeypatch, capsys, *run, "-o", dst)
        assert_one_error(*r, str(dst))
        assert tree(tmp_path) == before
    assert cli(monkeypatch, capsys, *run, "-o", tmp_path / "inputs.npz", "--force")[0] == 0
    assert set(np.load(tmp_path / "inputs.npz").files) == set(np.load(tmp_path / "outputs.npz").files)


def test_report_and_demo_refuse_a_users_folder_before_any_work(monkeypatch, capsys, snn_file, users_folder):
    before = tree(users_folder)
    start = time.perf_counter()
    r = cli(monkeypatch, capsys, "report", snn_file, "-o", users_folder)
    assert "report" in assert_one_error(*r, str(users_folder), "thesis.tex")
    r = cli(monkeypatch, capsys, "demo", "--out", users_folder, "--no-loihi")
    assert "demo folder" in assert_one_error(*r, str(users_folder), "thesis.tex")
    assert time.perf_counter() - start < 20  # refused before evaluating or training anything
    assert tree(users_folder) == before and sorted(os.listdir(users_folder.parent)) == ["thesis"]


def test_earlier_demo_and_report_folders_are_recognised(tmp_path, snn):
    from snnc.demo import is_demo_folder

    demo = tmp_path / "demo"
    demo.mkdir()
    save(snn, demo / "digits_ann.snnir")
    snnc.compile(snn, "cpu", demo / "digits_cpu")
    np.save(demo / "calib.npy", np.zeros(3))
    assert is_demo_folder(demo)
    (demo / "digits_snn.snnir").write_text("not hdf5")  # a demo name, but not a .snnir inside
    assert not is_demo_folder(demo)
    (demo / "digits_snn.snnir").unlink()
    (demo / "paper.md").write_text("mine")
    assert not is_demo_folder(demo)


# ------------------------------------------------------------------ temporaries of killed writers
_KILLED_WRITER = """
import sys, time
from snnc.core.fileio import atomic_path
with atomic_path(sys.argv[1], directory=True) as tmp:
    (tmp / "half").write_text("half of an artifact")
    print("writing", flush=True)
    time.sleep(120)
"""


def _writer(dst: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(dst)], stdout=subprocess.PIPE, text=True,
                         cwd=ROOT)
    assert p.stdout.readline().strip() == "writing"
    return p


@posix_only
@pytest.mark.timeout(120)
def test_a_killed_writers_temporary_is_removed_by_the_next_write_a_live_ones_is_kept(tmp_path, snn):
    out = tmp_path / "art"
    killed = _writer(out)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    left = [n for n in os.listdir(tmp_path) if n.startswith(".art.")]
    assert len(left) == 1 and left[0].startswith(f".art.snnc-{killed.pid}-") and left[0].endswith(".tmp")
    live = _writer(out)
    try:
        mine = [n for n in os.listdir(tmp_path) if n.startswith(f".art.snnc-{live.pid}-")]
        assert len(mine) == 1
        # temporaries of older snnc versions: no PID, removed once an hour old; `.old-PID` when PID is gone
        (tmp_path / ".art.k3j4h5g6.tmp").mkdir()
        (tmp_path / ".art.a1b2c3d4.tmp").mkdir()
        os.utime(tmp_path / ".art.a1b2c3d4.tmp", (time.time() - 7200,) * 2)
        (tmp_path / f".art.old-{killed.pid}").mkdir()
        (tmp_path / ".other.snnc-1-abcdefgh.tmp").mkdir()  # another output's: not ours to judge
        snnc.compile(snn, "cpu", out)
        assert sorted(os.listdir(tmp_path)) == sorted([".art.k3j4h5g6.tmp", mine[0], ".other.snnc-1-abcdefgh.tmp",
                                                       "art"])
        assert Artifact.open(out).target == "cpu"
    finally:
        live.kill()
        live.wait()
    assert clean_stale(out) == [tmp_path / mine[0]] and not (tmp_path / mine[0]).exists()


@posix_only
def test_a_writer_killed_between_the_two_renames_gets_the_old_output_back(tmp_path, snn):
    """Without an atomic exchange the old folder is moved aside first; if the writer dies then, it is restored."""
    out = snnc.compile(snn, "cpu", tmp_path / "art").path
    before = tree(out)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".art.snnc-{int(dead.stdout)}-abcdefgh.tmp"
    stale.mkdir()
    os.rename(out, stale / "old")
    (stale / "art").mkdir()
    assert clean_stale(out) == [stale]
    assert tree(out) == before and sorted(os.listdir(tmp_path)) == ["art"]


# ------------------------------------------------------------------ concurrent writers
_RACER = """
import os, sys, time
from pathlib import Path
from snnc.core.fileio import atomic_path
dst, go, directory = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "dir"
while not go.exists():
    time.sleep(0.001)
me = str(os.getpid())
for r in range(8):
    if directory:
        with atomic_path(dst, directory=True, replaces=lambda p: (p / "owner").is_file()) as tmp:
            for i in range(4):
                (tmp / f"part{i}").write_text(f"{me}.{r}" * 1000)
            (tmp / "owner").write_text(f"{me}.{r}")
    else:
        with atomic_path(dst) as tmp:
            tmp.write_text(f"{me}.{r}" * 10000)
"""


@posix_only
@pytest.mark.timeout(300)
@pytest.mark.parametrize("directory", [True, False])
def test_twelve_concurrent_writers_leave_one_complete_output(tmp_path, directory):
    dst, go = tmp_path / "out" / "art", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _RACER, str(dst), str(go), "dir" if directory else "file"],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True) for _ in range(12)]
    time.sleep(0.5)
    go.touch()
    errors = [p.communicate(timeout=240)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 12, errors
    assert os.listdir(dst.parent) == ["art"]  # no temporaries
    if directory:
        owner = (dst / "owner").read_text()
        assert sorted(os.listdir(dst)) == ["owner", "part0", "part1", "part2", "part3"]
        assert all((dst / f"part{i}").read_text() == owner * 1000 for i in range(4))  # all from one writer
    else:
        text = dst.read_text()
        assert len(text) % 10000 == 0 and text == text[:len(text) // 10000] * 10000


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "move-aside"])
def test_concurrent_threads_with_and_without_an_atomic_exchange(tmp_path, monkeypatch, exchange):
    import snnc.core.fileio as fileio

    if not exchange:
        monkeypatch.setattr(fileio, "_renameat2", None)
    dst, errors = tmp_path / "art", []
    barrier = threading.Barrier(8)

    def write(k: int) -> None:
        try:
            barrier.wait()
            for r in range(10):
                with atomic_path(dst, directory=True, replaces=lambda p: (p / "owner").is_file()) as tmp:
                    (tmp / "a").write_text(f"{k}.{r}")
                    (tmp / "owner").write_text(f"{k}.{r}")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert os.listdir(tmp_path) == ["art"] and (dst / "a").read_text() == (dst / "owner").read_text()


@posix_only
@pytest.mark.timeout(300)
def test_concurrent_compiles_to_one_output(tmp_path, snn_file):
    out = tmp_path / "art"
    cmd = [sys.executable, "-m", "snnc.cli", "-q", "compile", str(snn_file), "-o", str(out)]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0] * 3, results
    assert sorted(os.listdir(tmp_path)) == ["art", "in"] and Artifact.open(out).target == "cpu"


# ------------------------------------------------------------------ checksums on load
def _flip_byte(path: Path, at: int) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0x01]))


def test_manifest_checksums_every_file(tmp_path, snn):
    art = snnc.compile(snn, "cpu", tmp_path / "art").path
    m = json.loads((art / "manifest.json").read_text())
    assert m["format_version"] == 2 and set(m["checksums"]) == set(os.listdir(art)) - {"manifest.json"}
    for name, rec in m["checksums"].items():
        assert file_digest(art / name) == (rec["sha256"], rec["size"])
    assert is_artifact_folder(art)


def test_a_modified_or_truncated_file_is_refused_naming_it(tmp_path, monkeypatch, capsys, snn):
    art = snnc.compile(snn, "cpu", tmp_path / "art").path
    graph = art / "graph.snnir"
    _flip_byte(graph, graph.stat().st_size - 5)
    with pytest.raises(MalformedFileError, match=r"graph\.snnir: the artifact's file was modified"):
        Artifact.open(art)
    r = cli(monkeypatch, capsys, "inspect", art)
    assert "modified" in assert_one_error(*r, "graph.snnir", exit_code=3)
    with pytest.raises(MalformedFileError, match="modified"):
        snnc.load(art)
    snnc.compile(snn, "cpu", art)  # a corrupt artifact can be compiled again in place
    with open(graph, "r+b") as f:
        f.truncate(100)
    with pytest.raises(MalformedFileError, match=r"graph\.snnir: the artifact's file is truncated \(100 bytes"):
        Artifact.open(art)
    np.savez(tmp_path / "inputs.npz", x=np.random.rand(2, 16).astype(np.float32))
    r = cli(monkeypatch, capsys, "run", art, "-i", tmp_path / "inputs.npz", "-T", "2")
    assert "truncated" in assert_one_error(*r, "graph.snnir", exit_code=3)


@pytest.fixture(scope="module")
def lynxi_artifact(tmp_path_factory, snn):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return snnc.compile(snn, "lynxi", tmp_path_factory.mktemp("lynxi") / "art", time_steps=2, batch_size=2).path


@pytest.mark.parametrize("name,damage", [("model.onnx", "flip"), ("model.pt2", "truncate"), ("model.onnx", "grow")])
def test_a_damaged_lynxi_model_does_not_run(tmp_path, lynxi_artifact, name, damage):
    import shutil

    from snnc.backends.lynxi.runner import Runner

    art = tmp_path / "art"
    shutil.copytree(lynxi_artifact, art)
    Runner(art)  # intact: opens
    path = art / name
    if damage == "flip":
        _flip_byte(path, path.stat().st_size // 2)
    elif damage == "truncate":
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size - 1)
    else:
        with open(path, "ab") as f:
            f.write(b"\0")
    want = {"flip": "was modified", "truncate": "is truncated", "grow": "is longer than written"}[damage]
    for engine in ("onnx", "torch"):
        with pytest.raises(MalformedFileError, match=f"{name}: the artifact's file {want}"):
            Runner(art, engine)


def _edit_manifest(art: Path, **changes) -> None:
    m = json.loads((art / "manifest.json").read_text())
    for key, value in changes.items():
        if key == "onnx":
            m["files"]["onnx"] = value
        else:
            m[key] = value
    (art / "manifest.json").write_text(json.dumps(m))


@posix_only
@pytest.mark.parametrize("where", ["dotdot", "absolute", "symlink", "checksum-key"])
def test_manifest_paths_may_not_leave_the_folder(tmp_path, lynxi_artifact, where):
    import shutil

    art = tmp_path / "art"
    shutil.copytree(lynxi_artifact, art)
    secret = tmp_path / "secret.onnx"
    shutil.copy(art / "model.onnx", secret)
    m = json.loads((art / "manifest.json").read_text())
    sums = m["checksums"]
    if where == "dotdot":
        _edit_manifest(art, onnx="../secret.onnx")
        field = "'files.onnx'"
    elif where == "absolute":
        _edit_manifest(art, onnx=str(secret))
        field = "'files.onnx'"
    elif where == "symlink":
        (art / "link.onnx").symlink_to(secret)
        _edit_manifest(art, onnx="link.onnx", checksums={**sums, "link.onnx": sums["model.onnx"]})
        field = "link.onnx"
    else:
        _edit_manifest(art, checksums={**sums, "../secret.onnx": sums["model.onnx"]})
        field = "checksums['../secret.onnx']"
    with pytest.raises(UnsafeFileReferenceError, match="inside|symbolic link") as e:
        Artifact.open(art)
    assert field in str(e.value) and "manifest.json" in str(e.value)


def test_an_older_artifact_without_checksums_asks_for_a_recompile(tmp_path, snn):
    art = snnc.compile(snn, "cpu", tmp_path / "art").path
    m = json.loads((art / "manifest.json").read_text())
    del m["checksums"]
    (art / "manifest.json").write_text(json.dumps({**m, "format_version": 1}))
    with pytest.raises(MalformedFileError, match="format version 1 is not supported") as e:
        Artifact.open(art)
    assert "compile the model again" in str(e.value)
    (art / "manifest.json").write_text(json.dumps(m))  # format 2 without checksums: corrupt
    with pytest.raises(MalformedFileError, match="no 'checksums'"):
        Artifact.open(art)
    assert is_artifact_folder(art)  # still snnc's own: compiling again replaces it
    snnc.compile(snn, "cpu", art)
    assert Artifact.open(art).target == "cpu"
