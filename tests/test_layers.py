"""The SDK's layers: each imports only itself and the layers below it, and
no module imports itself back through others (see doc/architecture.rst);
and no module or class grows past the size one reader can hold.

Imports are read with ``ast``, so an import inside a function or under
``if TYPE_CHECKING:`` counts like one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import composable_upgrades

PACKAGE = "composable_upgrades"
SDK = Path(composable_upgrades.__file__).parent

#: Lowest first. ``errors`` is the one root module every layer may use;
#: ``data`` holds package data only.
LAYERS = ("errors", "data", "formats", "sources", "model", "planning", "render",
          "state", "run", "views", "rehearsal")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def imported_modules(path: Path, name: str, known: set[str]) -> set[str]:
    """The SDK modules ``path`` imports, anywhere in it."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target in known:
                found.add(target)
    return found - {name}


def import_graph(root: Path) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    known = set(files)
    return {name: imported_modules(path, name, known)
            for name, path in files.items()}


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None  # the package's own __init__: the public API, above all
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else -1


def violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in sorted(graph.items()):
        mine = layer_of(module)
        if mine is None:
            continue
        if mine < 0:
            found.append(f"{module} is in no layer")
            continue
        for target in sorted(targets):
            theirs = layer_of(target)
            if theirs is None or theirs > mine:
                found.append(f"{module} imports {target}, a layer above it")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, each found once from its first module."""
    found: list[list[str]] = []
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_every_sdk_module_is_in_a_layer_and_imports_only_below():
    graph = import_graph(SDK)
    assert len(graph) > 30
    assert violations(graph) == []


def test_no_import_cycle_in_the_sdk():
    assert cycles(import_graph(SDK)) == []


def test_every_layer_is_a_subpackage():
    for layer in LAYERS[1:]:
        assert (SDK / layer / "__init__.py").is_file(), layer


def plant(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / PACKAGE
    for relative, text in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return root


def test_a_planted_upward_import_inside_a_function_is_found(tmp_path):
    root = plant(tmp_path, {
        "__init__.py": "",
        "model/__init__.py": "",
        "model/deployment.py": "def f():\n    from composable_upgrades.run import execute\n",
        "run/__init__.py": "",
        "run/execute.py": "",
    })
    assert violations(import_graph(root)) == [
        "composable_upgrades.model.deployment imports "
        "composable_upgrades.run, a layer above it",
        "composable_upgrades.model.deployment imports "
        "composable_upgrades.run.execute, a layer above it"]


def test_a_planted_type_checking_cycle_is_found(tmp_path):
    root = plant(tmp_path, {
        "__init__.py": "",
        "state/__init__.py": "",
        "state/a.py": "from composable_upgrades.state import b\n",
        "state/b.py": ("from typing import TYPE_CHECKING\n"
                       "if TYPE_CHECKING:\n    from .a import thing\n"),
    })
    graph = import_graph(root)
    assert violations(graph) == []
    assert cycles(graph) == [["composable_upgrades.state.a",
                              "composable_upgrades.state.b",
                              "composable_upgrades.state.a"]]


@pytest.mark.parametrize("module, expected", [
    ("composable_upgrades.errors", 0),
    ("composable_upgrades.run.execute", LAYERS.index("run")),
    ("composable_upgrades", None),
])
def test_layer_of(module, expected):
    assert layer_of(module) == expected


#: The most lines an SDK module and a class may have (issue 11).
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 150
def oversize(root: Path) -> list[str]:
    """Every module over :data:`MAX_MODULE_LINES` lines and class over
    :data:`MAX_CLASS_LINES`, as ``module`` and ``module.Class``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        name = module_name(path, root)
        if len(text.splitlines()) > MAX_MODULE_LINES:
            found.append(name)
        found.extend(f"{name}.{node.name}" for node in ast.walk(ast.parse(text))
                     if isinstance(node, ast.ClassDef)
                     and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES)
    return found


def test_no_sdk_module_or_class_is_too_long():
    assert oversize(SDK) == []


def test_a_planted_long_module_and_class_are_found(tmp_path):
    body = "    x = 1\n"
    root = plant(tmp_path, {
        "__init__.py": "",
        "run/__init__.py": "",
        "run/long.py": "x = 1\n" * (MAX_MODULE_LINES + 1),
        "run/short.py": "x = 1\n" * MAX_MODULE_LINES,
        "run/big.py": "class Big:\n" + body * MAX_CLASS_LINES,
        "run/fits.py": "class Fits:\n" + body * (MAX_CLASS_LINES - 1),
    })
    assert oversize(root) == ["composable_upgrades.run.big.Big",
                              "composable_upgrades.run.long"]
