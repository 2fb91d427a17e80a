"""The peers group's fixtures, and its summary at the end of the pytest run."""

from __future__ import annotations

import pytest

from tests.peers import launch
from tests.peers.suites import cache_dir
from tests.tooling import missing, require_tool

SUMMARIES: list[str] = []
"""One line per suite compared in this session, printed at the end of the run."""


@pytest.fixture(scope="session")
def peers_ready() -> None:
    """What every suite run needs: etcd beside the store, etcdctl (the Python suites call
    it), and namespaces for the runs."""
    require_tool("etcd")
    require_tool("etcdctl")
    reason = launch.unavailable_reason()
    if reason is not None:
        missing(f"the peers runs need their own namespaces: {reason}")
    if not cache_dir().is_dir():
        missing(f"no peer suites are installed in {cache_dir()} (scripts/peers build)")


@pytest.fixture
def summaries() -> list[str]:
    """Where a test puts its suite's summary line."""
    return SUMMARIES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SUMMARIES:
        terminalreporter.section("peers: each suite against etcd and against kvstore")
        for line in SUMMARIES:
            terminalreporter.write_line(line)
