"""The layer order of docs/ARCHITECTURE.md, enforced on every module of the package.

Every import counts: at module level, inside functions, under `if TYPE_CHECKING:`, relative
ones. A module may import its own layer or a lower one, and no module may sit on an import
cycle, not even inside one layer. The layers come from the table in docs/ARCHITECTURE.md
(the one source); the folders map to `snnc.*` names as pyproject.toml's package-dir says.

`from snnc import X` and `import snnc` import the package `snnc` itself, which is the api
layer: below it, import the submodule (`from snnc.core import errors`, `import snnc.passes`).
"""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
TABLE_MARK = "<!-- the layer table: tests/test_layers.py reads it -->"


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int


# ---------------------------------------------------------------- the package and its imports
def layer_table(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """[(layer, module prefixes)] lowest first, from the table after TABLE_MARK: `| n | layer | `a`, `b` | ...`."""
    rows = []
    for line in text.split(TABLE_MARK, 1)[1].strip().splitlines():
        if not line.startswith("|"):
            break
        m = re.match(r"\|\s*(\d+)\s*\|\s*(\w+)\s*\|([^|]*)\|", line)
        if m:
            rows.append((int(m.group(1)), m.group(2), tuple(re.findall(r"`([\w.]+)`", m.group(3)))))
    assert [n for n, _, _ in rows] == list(range(1, len(rows) + 1)), "the layer table's rows are numbered 1, 2, ..."
    return [(name, prefixes) for _, name, prefixes in rows]


def package_dirs(root: Path) -> dict[str, Path]:
    """Package name -> folder, as pyproject.toml's package-dir maps them."""
    conf = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {pkg: root / folder for pkg, folder in conf["package-dir"].items()}


def find_modules(dirs: dict[str, Path]) -> dict[str, Module]:
    """Every module under the mapped folders, by its dotted name (a folder mapped itself wins)."""
    mods: dict[str, Module] = {}
    mapped = {d.resolve() for d in dirs.values()}
    for pkg, folder in dirs.items():
        for f in sorted(folder.rglob("*.py")):
            rel = f.relative_to(folder)
            if any((folder / Path(*rel.parts[:i])).resolve() in mapped for i in range(1, len(rel.parts))):
                continue  # inside another mapped folder (an installed layout)
            parts = [p for p in rel.with_suffix("").parts if p != "__init__"]
            name = ".".join([pkg, *parts])
            mods[name] = Module(name, f, f.name == "__init__.py")
    return mods


def _resolve(name: str, mods: dict[str, Module]) -> str | None:
    """The module `name` names: itself, or the module that defines the attribute `name`."""
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _imported_names(node: ast.AST, mod: Module) -> list[str] | None:
    """The dotted names an import statement imports (relative ones made absolute); None: not an import."""
    pkg = mod.name if mod.is_package else mod.name.rpartition(".")[0]
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            up = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
            base = ".".join(up + ([base] if base else []))
        return [base] + [f"{base}.{a.name}" for a in node.names]  # `from p import m`: p, then m
    return None


def import_edges(mods: dict[str, Module], top: str) -> list[Edge]:
    """Every import between modules of the package `top`, wherever it is written."""
    edges = []
    for mod in mods.values():
        for node in ast.walk(ast.parse(mod.path.read_text(encoding="utf-8"), str(mod.path))):
            names = _imported_names(node, mod)
            if names is None:
                continue
            seen = set()
            for n in names:
                if n != top and not n.startswith(top + "."):
                    continue
                target = _resolve(n, mods)
                if target is None or target == mod.name or target in seen:
                    continue
                if mod.is_package and target.startswith(mod.name + "."):
                    continue  # a package's __init__ importing its own children
                seen.add(target)
                edges.append(Edge(mod.name, target, node.lineno))
    return edges


def layer_of(name: str, table: list[tuple[str, tuple[str, ...]]]) -> tuple[int, str] | None:
    """(index, layer) of the longest prefix of the table that `name` is or lies under."""
    best = None
    for i, (layer, prefixes) in enumerate(table):
        for p in prefixes:
            if (name == p or name.startswith(p + ".")) and (best is None or len(p) > best[0]):
                best = (len(p), i, layer)
    return None if best is None else best[1:]


# ---------------------------------------------------------------- the two checks
def _where(mods: dict[str, Module], root: Path, name: str, line: int | None = None) -> str:
    p = mods[name].path
    p = p.relative_to(root) if p.is_relative_to(root) else p
    return f"{p}:{line}" if line is not None else str(p)


def layer_violations(root: Path, mods: dict[str, Module], edges: list[Edge],
                     table: list[tuple[str, tuple[str, ...]]], top: str = "snnc") -> list[str]:
    out = [f"{_where(mods, root, m)}: module {m} is in no layer of the table; add it to docs/ARCHITECTURE.md"
           for m in sorted(mods) if layer_of(m, table) is None]
    for e in edges:
        a, b = layer_of(e.source, table), layer_of(e.target, table)
        if a is None or b is None or b[0] <= a[0]:
            continue
        msg = (f"{_where(mods, root, e.source, e.line)}: {e.source} [{a[1]}] imports {e.target} [{b[1]}] "
               f"({_where(mods, root, e.target)}), a higher layer")
        if e.target == top:
            msg += (f"; `from {top} import X` / `import {top}` imports the package {top} itself ({b[1]} layer): "
                    f"import the submodule instead ({top}.core.errors, {top}.passes, ...)")
        out.append(msg)
    return out


def import_cycles(root: Path, mods: dict[str, Module], edges: list[Edge]) -> list[str]:
    """Each strongly connected component of more than one module, with its imports (file:line)."""
    succ: dict[str, list[Edge]] = {m: [] for m in mods}
    for e in edges:
        succ[e.source].append(e)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    comps: list[list[str]] = []

    def visit(root: str) -> None:  # Tarjan's algorithm, iterative (no recursion limit)
        work = [(root, iter(succ[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            e = next(it, None)
            if e is not None:
                w = e.target
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(succ[w])))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                comps.append(comp)

    for m in sorted(mods):
        if m not in index:
            visit(m)
    out = []
    for comp in sorted(sorted(c) for c in comps if len(c) > 1):
        members = set(comp)
        via = [f"{_where(mods, root, e.source, e.line)} {e.source} -> {e.target}"
               for m in comp for e in succ[m] if e.target in members]
        out.append(f"import cycle through {', '.join(comp)}:\n    " + "\n    ".join(via))
    return out


def check(root: Path, dirs: dict[str, Path], table, top: str = "snnc") -> tuple[list[str], list[str]]:
    mods = find_modules(dirs)
    edges = import_edges(mods, top)
    return layer_violations(root, mods, edges, table, top), import_cycles(root, mods, edges)


# ---------------------------------------------------------------- imports inside functions
# Below the tools layer, an snnc module is imported at module level, never inside a function to hide
# a cycle. The exceptions: the modules here, each of which imports, when it is imported, a heavy
# dependency that its importers need only on one path (triton: optional, no wheels off Linux).
# module -> (that dependency, why it stays lazy); test_each_lazy_import_allowance_holds checks that
# the module does import the dependency at import time. The tools (the top layer: cli, demo, report,
# fuzz) import lazily to keep `snnc --help` fast and are not checked.
LAZY_IMPORTS = {
    "snnc.runtime.triton.neuron": ("triton", "the Triton neuron kernels (snnc.nn's triton backend, the "
                                             "interpreter's neuron_impl='triton'); no triton wheels off Linux"),
    "snnc.runtime.triton.surrogate": ("triton", "the Triton surrogate gradients (snnc.nn's triton backend)"),
    "snnc.runtime.triton.chain": ("triton", "the fused elementwise-chain kernel of the Triton session"),
    "snnc.runtime.triton.linear": ("triton", "the fused linear + neuron kernel of the Triton session"),
    "snnc.frontends.onnx": ("onnx", "ONNX input only (frontends/loader.py); importing onnx takes ~0.6 s, which "
                                    "every `snnc.convert` and `snnc compile` of a PyTorch model would pay"),
    "snnc.api": ("torch", "snnc/__init__.py's __getattr__ (snnc.convert, ...): importing any submodule, e.g. "
                          "snnc.core for `snnc --help`, imports the package snnc, which must not import torch"),
}


def _function_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """The import statements inside a function (a method, a nested function), each once."""
    found: dict[int, ast.Import | ast.ImportFrom] = {}
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    found.setdefault(id(node), node)
    return sorted(found.values(), key=lambda n: n.lineno)


def _import_time_nodes(tree: ast.AST):
    """The import statements run when the module is imported: outside functions and `if TYPE_CHECKING:`."""
    work = list(ast.iter_child_nodes(tree))
    while work:
        node = work.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            work.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        work.extend(ast.iter_child_nodes(node))


def _lazy_targets(node: ast.Import | ast.ImportFrom, mod: Module, mods: dict[str, Module], top: str) -> list[str]:
    """The modules of `top` one import statement imports: `from p import m` names p.m when m is a module, else p."""
    names = _imported_names(node, mod)
    if isinstance(node, ast.ImportFrom):
        names = names[1:]  # the package p itself only when what is imported from it is no module
    out = []
    for n in names:
        if n == top or n.startswith(top + "."):
            target = _resolve(n, mods)
            if target is not None and target not in out:
                out.append(target)
    return out


def lazy_imports(root: Path, mods: dict[str, Module], table, allowed=LAZY_IMPORTS, top: str = "snnc") -> list[str]:
    """Each import of a module of `top` inside a function of a module below the top (tools) layer that
    `allowed` does not name, as 'file:line: ...'."""
    out = []
    for mod in mods.values():
        layer = layer_of(mod.name, table)
        if layer is None or layer[0] == len(table) - 1:
            continue
        for node in _function_imports(ast.parse(mod.path.read_text(encoding="utf-8"), str(mod.path))):
            for target in _lazy_targets(node, mod, mods, top):
                if target not in allowed:
                    out.append(f"{_where(mods, root, mod.name, node.lineno)}: {mod.name} [{layer[1]}] imports "
                               f"{target} inside a function (`{ast.unparse(node)}`): import it at module level "
                               f"(only the modules of LAZY_IMPORTS, which import an optional heavy dependency, "
                               f"may be imported lazily)")
    return out


def import_time_dependencies(mods: dict[str, Module], top: str = "snnc") -> dict[str, set[str]]:
    """Module -> the top-level names of the other distributions it imports when it is imported, through
    the modules of `top` (and their parent packages) it imports then."""
    direct: dict[str, set[str]] = {}
    inner: dict[str, set[str]] = {}
    for mod in mods.values():
        direct[mod.name], inner[mod.name] = set(), set()
        for node in _import_time_nodes(ast.parse(mod.path.read_text(encoding="utf-8"), str(mod.path))):
            for n in _imported_names(node, mod):
                if n == top or n.startswith(top + "."):
                    target = _resolve(n, mods)
                    while target:  # a module's parent packages are imported first
                        if target in mods and target != mod.name:
                            inner[mod.name].add(target)
                        target = target.rpartition(".")[0]
                elif n and n.split(".")[0] != "__future__":
                    direct[mod.name].add(n.split(".")[0])
    deps = {}
    for name in mods:
        seen, work = {name}, [name]
        while work:
            for t in inner[work.pop()] - seen:
                seen.add(t)
                work.append(t)
        deps[name] = set().union(*(direct[m] for m in seen))
    return deps


# ---------------------------------------------------------------- the tests
def _table():
    return layer_table(DOC.read_text(encoding="utf-8"))


def test_the_doc_table_holds_the_layer_order():
    assert [layer for layer, _ in _table()] == ["core", "ir", "runtime", "nn", "passes", "frontends", "backends",
                                                "api", "tools"]


def test_no_import_goes_against_the_layer_order():
    violations, _ = check(ROOT, package_dirs(ROOT), _table())
    assert not violations, f"{len(violations)} imports against the layer order (docs/ARCHITECTURE.md):\n" + \
        "\n".join(violations)


def test_no_module_is_on_an_import_cycle():
    _, cycles = check(ROOT, package_dirs(ROOT), _table())
    assert not cycles, "\n".join(cycles)


def test_the_checker_reports_an_upward_import_in_a_function_a_package_import_and_a_cycle(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "low").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "__init__.py").write_text("from pkg.low import a  # its own child: not an edge\n")
    (pkg / "low" / "a.py").write_text("def f():\n    from pkg.high import h\n    return h\n")
    (pkg / "low" / "b.py").write_text("from . import c\n")
    (pkg / "low" / "c.py").write_text("import pkg.low.b\nfrom pkg import high\n")
    (pkg / "high.py").write_text("from pkg.low import a\n")
    table = [("low", ("pkg.low",)), ("high", ("pkg.high", "pkg"))]
    violations, cycles = check(tmp_path, {"pkg": pkg}, table, top="pkg")
    text = "\n".join(violations)
    assert "pkg/low/a.py:2: pkg.low.a [low] imports pkg.high [high] (pkg/high.py), a higher layer" in text
    assert "pkg/low/c.py:2: pkg.low.c [low] imports pkg [high] (pkg/__init__.py)" in text
    assert "imports the package pkg itself" in text
    assert len(violations) == 3  # c.py's `from pkg import high` names pkg and pkg.high
    assert len(cycles) == 2
    assert "import cycle through pkg.high, pkg.low.a" in cycles[0]
    assert "import cycle through pkg.low.b, pkg.low.c" in cycles[1] and "pkg/low/b.py:1" in cycles[1]


def test_a_module_in_no_layer_is_reported(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "stray.py").write_text("")
    violations, _ = check(tmp_path, {"pkg": tmp_path / "pkg"}, [("api", ("pkg",)), ("x", ("pkg.x",))], top="pkg")
    assert violations == []  # pkg.stray lies under pkg
    violations, _ = check(tmp_path, {"pkg": tmp_path / "pkg"}, [("x", ("pkg.x",))], top="pkg")
    assert "module pkg.stray is in no layer" in "\n".join(violations)


def test_no_snnc_module_is_imported_inside_a_function_below_the_tools():
    lazy = lazy_imports(ROOT, find_modules(package_dirs(ROOT)), _table())
    assert not lazy, f"{len(lazy)} imports inside functions (docs/ARCHITECTURE.md, Layers):\n" + "\n".join(lazy)


def test_each_lazy_import_allowance_holds():
    """Each LAZY_IMPORTS module exists, imports its dependency when it is imported, and is imported lazily."""
    mods = find_modules(package_dirs(ROOT))
    deps = import_time_dependencies(mods)
    used = {t for m in mods.values() if layer_of(m.name, _table())[1] != "tools"
            for node in _function_imports(ast.parse(m.path.read_text(encoding="utf-8")))
            for t in _lazy_targets(node, m, mods, "snnc")}
    for name, (dependency, _why) in LAZY_IMPORTS.items():
        assert name in mods, f"LAZY_IMPORTS names {name}, which is no module of snnc"
        assert dependency in deps[name], f"{name} does not import {dependency} when it is imported: " \
                                         f"import it at module level and drop it from LAZY_IMPORTS"
        assert name in used, f"nothing below the tools imports {name} inside a function: drop it from LAZY_IMPORTS"


def test_the_checker_reports_an_import_in_a_function_unless_allowed(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "low").mkdir(parents=True)
    (pkg / "__init__.py").write_text("def __getattr__(name):\n    from pkg import tools\n    return tools\n")
    (pkg / "low" / "__init__.py").write_text("")
    (pkg / "low" / "a.py").write_text(
        "import os\n\n\ndef f():\n    from pkg.low import b\n    import pkg.low.heavy\n    return b\n\n\n"
        "class C:\n    def m(self):\n        def inner():\n            from . import b, heavy\n        return inner\n")
    (pkg / "low" / "b.py").write_text("from pkg.low import heavy\n")
    (pkg / "low" / "heavy.py").write_text("import heavydep.sub\n")
    (pkg / "low" / "light.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import heavydep\n\n\ndef f():\n    import heavydep\n")
    (pkg / "tools.py").write_text("def main():\n    from pkg.low import b  # the tools may\n")
    table = [("low", ("pkg.low",)), ("api", ("pkg",)), ("tools", ("pkg.tools",))]
    mods = find_modules({"pkg": pkg})
    allowed = {"pkg.low.heavy": ("heavydep", "a heavy optional dependency")}
    lazy = lazy_imports(tmp_path, mods, table, allowed, top="pkg")
    assert len(lazy) == 3, lazy
    assert lazy[0].startswith("pkg/__init__.py:2: pkg [api] imports pkg.tools inside a function")
    assert lazy[1].startswith("pkg/low/a.py:5: pkg.low.a [low] imports pkg.low.b inside a function "
                              "(`from pkg.low import b`)")
    assert lazy[2].startswith("pkg/low/a.py:13: pkg.low.a [low] imports pkg.low.b inside a function")
    assert lazy_imports(tmp_path, mods, table, {**allowed, "pkg.low.b": ("heavydep", ""),
                                                "pkg.tools": ("", "")}, top="pkg") == []
    deps = import_time_dependencies(mods, top="pkg")
    assert deps["pkg.low.heavy"] == {"heavydep"} and deps["pkg.low.b"] == {"heavydep"}
    assert deps["pkg.low.a"] == {"os"} and deps["pkg.low.light"] == {"typing"}
