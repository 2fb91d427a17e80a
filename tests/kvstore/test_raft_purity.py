"""kvstore.raft must stay pure: no module in it may import anything that does I/O or reads
a clock. This is what lets the simulation tests drive whole clusters deterministically."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.tooling import ROOT

RAFT = ROOT / "kvstore" / "raft"
FORBIDDEN = {
    "asyncio",
    "grpc",
    "socket",
    "os",
    "time",
    "threading",
    "multiprocessing",
    "subprocess",
    "random",
    "io",
    "pathlib",
    "select",
    "selectors",
    "signal",
    "datetime",
    "kvstore.server",
    "kvstore.storage",
}


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def violations(path: Path) -> list[str]:
    bad = []
    for module in imported_modules(path):
        for forbidden in FORBIDDEN:
            if module == forbidden or module.startswith(forbidden + "."):
                bad.append(f"{path.relative_to(ROOT)} imports {module}")
    return bad


def test_raft_core_imports_nothing_impure() -> None:
    files = sorted(RAFT.rglob("*.py"))
    assert files, "kvstore/raft has no modules"
    problems = [v for f in files for v in violations(f)]
    assert not problems, "\n".join(problems)


def test_the_checker_catches_an_impure_import(tmp_path: Path) -> None:
    sample = tmp_path / "bad.py"
    sample.write_text("import time\nfrom os import path\nfrom . import sibling\n")
    assert imported_modules(sample) == {"time", "os"}
