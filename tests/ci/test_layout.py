"""The shape of the module package: no import circle, and imports only point downwards.

The import graph is read from the source (every ``import`` and ``from ... import`` of a
``kvstore_ci`` module, at any depth, including imports inside functions), so a circle
that a lazy import hides at run time is still found. Then every module is imported first,
alone, in a fresh interpreter state, which is where an order-dependent circle breaks.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tooling import ROOT

PACKAGE = ROOT / "ci" / "src" / "kvstore_ci"

# The top of the graph: the module object, the plan that drives it, the command line.
TOP = {"kvstore_ci", "kvstore_ci.__main__", "kvstore_ci.dryrun"}
MAIN_OBJECT = "kvstore_ci.main"
PLAN = {"kvstore_ci.plan", "kvstore_ci.recorder", "kvstore_ci.dryrun"}
# Modules that may import the plan's modules, besides the plan's own.
PLAN_USERS = {"kvstore_ci.__main__", "kvstore_ci.dryrun", "kvstore_ci.recorder"}
# The plain logic run inside containers or by the executor: no Dagger functions in them.
PURE = {
    "kvstore_ci.affected",
    "kvstore_ci.argocd",
    "kvstore_ci.ecr",
    "kvstore_ci.eks_token",
    "kvstore_ci.environments",
    "kvstore_ci.images",
    "kvstore_ci.kube",
    "kvstore_ci.promotion",
    "kvstore_ci.terraform",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """The kvstore_ci modules ``name`` imports (``from kvstore_ci import x`` is ``.x``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("kvstore_ci")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kvstore_ci"):
            base = str(node.module)
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in MODULES else base)
    return found - {name}


GRAPH = {name: imports_of(name) for name in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle (as a path that comes back to its start), by depth-first search."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for child in sorted(graph.get(node, ())):
            if state.get(child) == 1:
                found.append([*path[path.index(child) :], child])
            elif child not in state:
                visit(child, [*path, child])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def below_the_package(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph without the package root, which only re-exports the module object."""
    return {n: deps - {"kvstore_ci"} for n, deps in graph.items() if n != "kvstore_ci"}


def test_the_graph_is_read_from_every_module() -> None:
    assert {"kvstore_ci.main", "kvstore_ci.executor", "kvstore_ci.functions.gitops"} <= set(GRAPH)
    assert "kvstore_ci.functions.base" in GRAPH["kvstore_ci.functions.terraform"]
    assert "kvstore_ci.terraform" in GRAPH["kvstore_ci.functions.terraform"]


def test_the_cycle_finder_finds_a_circle() -> None:
    """The finder is itself checked, so a broken one cannot pass everything."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_no_import_circle() -> None:
    assert cycles(below_the_package(GRAPH)) == []


def test_only_the_top_imports_the_module_object() -> None:
    users = {n for n, deps in GRAPH.items() if MAIN_OBJECT in deps}
    assert users <= TOP, users - TOP


def test_the_plan_depends_on_the_module_never_the_other_way_round() -> None:
    users = {n for n, deps in GRAPH.items() if deps & PLAN}
    assert users <= PLAN_USERS, users - PLAN_USERS
    assert MAIN_OBJECT in GRAPH["kvstore_ci.dryrun"]


def test_pure_logic_imports_no_stage_module() -> None:
    stage_modules = {n for n in MODULES if n.startswith("kvstore_ci.functions")}
    stage_modules |= {"kvstore_ci.executor", "kvstore_ci.stages", MAIN_OBJECT, *PLAN}
    for name in PURE:
        assert not GRAPH[name] & stage_modules, (name, GRAPH[name] & stage_modules)


def test_families_build_on_base_and_never_reach_up() -> None:
    families = [n for n in MODULES if n.startswith("kvstore_ci.functions.")]
    for name in families:
        assert MAIN_OBJECT not in GRAPH[name], name
        assert not GRAPH[name] & PLAN, name
        if name != "kvstore_ci.functions.base":
            assert "kvstore_ci.functions.base" in GRAPH[name], name
    joined = {n for n, deps in GRAPH.items() if deps & set(families)} - set(families)
    assert joined == {MAIN_OBJECT}, "only the module object joins the families"


ISOLATED_IMPORTS = """
import importlib, sys
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "kvstore_ci" or m.startswith("kvstore_ci.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as error:
        failed.append(f"{name}: {type(error).__name__}: {error}")
print("\\n".join(failed))
"""


@pytest.mark.timeout(300)
def test_every_module_imports_first_and_alone() -> None:
    result = subprocess.run(
        [sys.executable, "-c", ISOLATED_IMPORTS, *sorted(MODULES)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert result.stdout.strip() == "", result.stdout
