"""Fixtures of the Kubernetes tests: a 3-member store and a kube-apiserver on top of it.

Both live for one module, which may kill and restart store members and the apiserver as
long as it leaves them running; the binaries come from scripts/kubernetes (see
tests/tooling.py's :func:`require_kubernetes_binary`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kvstore.verify.cluster import RAFT_FLAGS, LocalCluster, free_port
from tests.kvstore.kubernetes.apiserver import HOST, ApiServer
from tests.kvstore.kubernetes.client import ApiClient, Kubectl
from tests.kvstore.server.conftest import running
from tests.tooling import require_kubernetes_binary


@pytest.fixture(scope="module")
def kube_apiserver_binary() -> str:
    return require_kubernetes_binary("kube-apiserver")


@pytest.fixture(scope="module")
def kubectl_binary() -> str:
    return require_kubernetes_binary("kubectl")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A healthy 3-member store."""
    with running(LocalCluster(tmp_path_factory.mktemp("store"), 3, extra=RAFT_FLAGS)) as c:
        yield c


@pytest.fixture(scope="module")
def apiserver(
    kube_apiserver_binary: str, store: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    """A ready kube-apiserver given every member's client URL."""
    server = ApiServer(
        kube_apiserver_binary,
        tmp_path_factory.mktemp("apiserver"),
        [m.client_url for m in store.members],
        free_port(HOST),
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def api(apiserver: ApiServer) -> Iterator[ApiClient]:
    client = apiserver.client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def kubectl(apiserver: ApiServer, kubectl_binary: str) -> Kubectl:
    return apiserver.kubectl(kubectl_binary)
