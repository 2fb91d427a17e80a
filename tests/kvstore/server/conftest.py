"""Fixtures for the server tests: real clusters of ``kvstore serve`` processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kvstore.verify.cluster import RAFT_FLAGS, LocalCluster
from tests.tooling import require_tool

KVSTORE = str(Path(sys.executable).parent / "kvstore")
"""The ``kvstore`` command of this environment."""


@contextmanager
def running(cluster: LocalCluster) -> Iterator[LocalCluster]:
    """Start ``cluster``, wait until every member is healthy, and stop it at the end.
    Clusters here pass :data:`RAFT_FLAGS` in ``extra``: the tests' waits assume them."""
    try:
        cluster.start()
        cluster.wait_healthy()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A healthy 3-member cluster for the tests of one module (which may kill and restart
    members, as long as they leave three healthy members behind)."""
    with running(LocalCluster(tmp_path_factory.mktemp("cluster"), 3, extra=RAFT_FLAGS)) as c:
        yield c


@pytest.fixture(scope="session")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One 3-member cluster for every module whose tests never kill a member; such a
    module overrides ``cluster`` with it, which saves starting a cluster per module."""
    with running(LocalCluster(tmp_path_factory.mktemp("shared"), 3, extra=RAFT_FLAGS)) as c:
        yield c


Etcdctl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def etcdctl_path() -> str:
    """The real etcdctl (Debian etcd-client)."""
    return require_tool("etcdctl")


@pytest.fixture
def etcdctl(etcdctl_path: str, cluster: LocalCluster) -> Etcdctl:
    """Run etcdctl (API v3) against every member of the shared cluster."""

    def run(
        *args: str,
        endpoints: list[str] | None = None,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = 30,
    ) -> subprocess.CompletedProcess[str]:
        eps = ",".join(endpoints or cluster.endpoints)
        env = {**os.environ, "ETCDCTL_API": "3"}
        result = subprocess.run(
            [etcdctl_path, "--endpoints", eps, "--command-timeout=15s", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"etcdctl {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    return run


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A scratch directory."""
    return tmp_path


@pytest.fixture(scope="session")
def http_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A healthy 3-member cluster whose members also serve the HTTP JSON API
    (``--listen-client-http-urls``, :attr:`Member.http_url`), shared by the modules that
    test it (they leave three healthy members behind)."""
    root = tmp_path_factory.mktemp("http")
    with running(LocalCluster(root, 3, extra=RAFT_FLAGS, client_http=True)) as c:
        yield c
