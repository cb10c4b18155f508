"""The layers of CONTRIBUTING.md hold: every import in every module of effdl_ros (at module top or
inside a function, both count) points to the same package or to a lower layer, and no two modules or
packages import each other, directly or round a loop. Parsed with ast, so nothing is imported."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1] / "effdl_ros"

#: Lowest first. A package may import its own modules and any package of a lower layer; packages of
#: one layer may import each other as long as no loop forms (checked below).
LAYERS: List[Tuple[str, Set[str]]] = [
    ("base", {"errors", "atomic_io", "resources", "device", "__init__"}),
    ("algorithms", {"data", "energy", "ddi", "tracking", "segmentation", "adaptation", "training"}),
    ("runtime", {"runtime"}),
    ("nodekit", {"nodekit"}),
    ("nodes", {"nodes"}),
    ("harness", {"graph", "viz", "bench"}),
    ("cli", {"cli"}),
]
LEVEL = {pkg: i for i, (_, pkgs) in enumerate(LAYERS) for pkg in pkgs}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> Set[str]:
    """effdl_ros modules this file imports (`from pkg import name` counts name when it is a module)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
    return {m for m in found if m == "effdl_ros" or m.startswith("effdl_ros.")}


def _graph() -> Dict[str, Set[str]]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for m in _imports(path):
            while m not in modules and "." in m:   # `from pkg import function` -> pkg
                m = m.rpartition(".")[0]
            if m in modules and m != name:
                targets.add(m)
        graph[name] = targets
    return graph


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one member (Tarjan), i.e. import loops."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    out: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_package_has_a_layer():
    packages = {_package(m) for m in _graph()}
    assert packages - set(LEVEL) == set(), "add the new package to LAYERS here and in CONTRIBUTING.md"


def test_no_import_points_upward():
    upward = sorted(f"{a} imports {b}" for a, targets in _graph().items() for b in targets
                    if LEVEL[_package(b)] > LEVEL[_package(a)])
    assert upward == []


def test_no_import_loop_between_packages():
    packages: Dict[str, Set[str]] = {}
    for a, targets in _graph().items():
        packages.setdefault(_package(a), set()).update(_package(b) for b in targets if _package(b) != _package(a))
    assert _cycles(packages) == []


def test_no_import_loop_between_modules():
    assert _cycles(_graph()) == []


def test_the_checks_see_a_violation(tmp_path):
    """The rule itself can fail: an upward import and a loop in a made-up graph are found."""
    graph = {"effdl_ros.runtime.a": {"effdl_ros.nodes.b"}, "effdl_ros.nodes.b": {"effdl_ros.runtime.a"}}
    assert _cycles(graph) == [["effdl_ros.nodes.b", "effdl_ros.runtime.a"]]
    assert LEVEL[_package("effdl_ros.nodes.b")] > LEVEL[_package("effdl_ros.runtime.a")]
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from effdl_ros.cli import main\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(f"{__name__}.ROOT", tmp_path)
        assert _imports(bad) == {"effdl_ros.cli", "effdl_ros.cli.main"}
