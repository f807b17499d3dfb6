"""labkit's imports, read statically (ast): they run one way and use public names.

- no import cycle between labkit's modules (imports inside functions count;
  those under ``if TYPE_CHECKING:`` do not, they never run);
- no module imports a private name (``_x``) from another module: what two
  modules share is public in the lower one (gettext's ``_`` is the exception);
- every ``labkit`` import names a module that exists (a split that forgot an
  import fails here, not in the middle of a container start).

A submodule's implicit import of its parent package is not an edge: a package
``__init__`` that re-exports its submodules is not a cycle.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "labkit"
ALLOWED_PRIVATE = {"_"}  # gettext


def _modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for path in PKG.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        mods[".".join(parts)] = (path, is_pkg)
    return mods


MODULES = _modules()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                skip.update(id(n) for n in ast.walk(sub))
    return skip


def _imports(name: str) -> list[tuple[str, str | None, int]]:
    """(module imported, name taken from it or None, line) for each labkit import of ``name``."""
    path, is_pkg = MODULES[name]
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_nodes(tree)
    package = name if is_pkg else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] == "labkit"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "labkit":
                continue
            out += [(module, a.name, node.lineno) for a in node.names]
    return out


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name in MODULES:
        edges = set()
        for module, taken, _line in _imports(name):
            sub = f"{module}.{taken}" if taken else None
            edges.add(sub if sub in MODULES else module)
        edges.discard(name)
        graph[name] = {e for e in edges if e in MODULES}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_scan_sees_the_package():
    assert "labkit.api" in MODULES and "labkit.kernel.namespaces" in MODULES
    graph = _graph()
    assert "labkit.kernel.cgroups.base" in graph["labkit.kernel.cgroups.v1"]
    # a cycle made on purpose is found
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle():
    assert _cycles(_graph()) == []


def test_no_private_name_imported_from_another_module():
    bad = []
    for name in MODULES:
        for module, taken, line in _imports(name):
            if taken and taken.startswith("_") and not taken.startswith("__") \
                    and taken not in ALLOWED_PRIVATE and module != name:
                bad.append(f"{MODULES[name][0].relative_to(ROOT)}:{line}: {taken} from {module}")
    assert bad == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_labkit_import_exists(name):
    missing = []
    for module, taken, line in _imports(name):
        if module in MODULES:
            continue
        missing.append(f"line {line}: {module}")
    assert missing == []


# The layers, bottom first (CONTRIBUTING.md, "The layers"); utilities any layer may import.
UTILITIES = {"labkit.errors", "labkit.i18n", "labkit.paths", "labkit.units", "labkit.spec", "labkit.volspec"}
# Imports that go up a layer on purpose, each explained in CONTRIBUTING.md.
UPWARD = {
    ("labkit.images.build.running", "labkit.api"),
    ("labkit.images.changes", "labkit.api"),
    ("labkit.monitor.sampler", "labkit"),
    ("labkit.monitor.sampler", "labkit.plots"),
    ("labkit.vm.comparison", "labkit"),
}


def layer(name: str) -> int:
    parts = name.split(".")
    if name == "labkit.kernel.libc":
        return 0
    if parts[1:2] == ["kernel"]:
        return 1
    if parts[1:2] in (["engine"], ["images"], ["monitor"], ["vm"]):
        return 2
    return 3  # the API: labkit, api, cli, live, plots, course, doctor


def test_imports_go_down_the_layers():
    graph = _graph()
    up = {(a, b) for a, edges in graph.items() for b in edges
          if b not in UTILITIES and a not in UTILITIES and layer(b) > layer(a)}
    assert up == UPWARD


def test_utilities_import_only_utilities():
    graph = _graph()
    assert {(a, b) for a in UTILITIES for b in graph[a] if b not in UTILITIES} == set()
