"""TLS on both ports with client-certificate authentication: a 2-member cluster whose
members talk to each other over mutual TLS, reached by etcdctl and the Python client with a
certificate, and refused without one. The CA and certificates are made by the test with
the ``cryptography`` package, as an operator's own CA would issue them."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest

from kvstore.api.gen.authpb import auth_pb2
from kvstore.api.gen.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvstore.client import ClientError, SyncClient
from kvstore.verify.cluster import RAFT_FLAGS, LocalCluster, next_host
from tests.kvstore.server.conftest import running
from tests.pki import SERVER_AND_CLIENT, ScratchCa, write_cert, write_key
from tests.tooling import require_tool

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path


def _make_pki(root: Path, ips: list[str]) -> Pki:
    ca = ScratchCa("kvstore test CA")
    cert, key = ca.issue("kvstore member", ips, SERVER_AND_CLIENT)
    pki = Pki(root / "ca.pem", root / "member.pem", root / "member-key.pem")
    write_cert(pki.ca, ca.cert)
    write_cert(pki.cert, cert)
    write_key(pki.key, key)
    return pki


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, Pki]]:
    root = tmp_path_factory.mktemp("tls")
    hosts = [next_host(), next_host()]
    pki = _make_pki(root, hosts)
    flags = [
        "--cert-file", str(pki.cert), "--key-file", str(pki.key),
        "--trusted-ca-file", str(pki.ca), "--client-cert-auth", "true",
        "--peer-cert-file", str(pki.cert), "--peer-key-file", str(pki.key),
        "--peer-trusted-ca-file", str(pki.ca), "--peer-client-cert-auth", "true",
    ]  # fmt: skip
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(),
        private_key=pki.key.read_bytes(),
        certificate_chain=pki.cert.read_bytes(),
    )
    cluster = LocalCluster(
        root,
        2,
        extra=[*RAFT_FLAGS, *flags],
        scheme="https",
        credentials=creds,
        hosts=hosts,
        client_http=True,
    )
    with running(cluster):
        yield cluster, pki


def test_client_with_certificate_reads_and_writes_through_both_members(
    tls_cluster: tuple[LocalCluster, Pki],
) -> None:
    cluster, _ = tls_cluster
    leader = cluster.leader()
    follower = next(m for m in cluster.members if m is not leader)
    with cluster.client([follower]) as c:
        c.put(b"secure", b"yes")  # forwarded to the leader over the mutual-TLS peer link
        assert c.get(b"secure").kvs[0].value == b"yes"


def test_client_without_certificate_is_refused(tls_cluster: tuple[LocalCluster, Pki]) -> None:
    cluster, pki = tls_cluster
    server_only = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
    client = SyncClient([cluster.endpoints[0]], timeout=3, rounds=1, credentials=server_only)
    with client, pytest.raises(ClientError) as info:
        client.get(b"secure")
    assert info.value.code == grpc.StatusCode.UNAVAILABLE


def test_etcdctl_with_certificates(tls_cluster: tuple[LocalCluster, Pki]) -> None:
    etcdctl = require_tool("etcdctl")
    cluster, pki = tls_cluster
    result = subprocess.run(
        [etcdctl, "--endpoints", ",".join(cluster.endpoints), "--cacert", str(pki.ca),
         "--cert", str(pki.cert), "--key", str(pki.key), "put", "via-etcdctl", "tls"],
        capture_output=True, text=True, timeout=30, check=False,
        env={**os.environ, "ETCDCTL_API": "3"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with cluster.client() as c:
        assert c.get(b"via-etcdctl").kvs[0].value == b"tls"


def kvstore_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "kvstore"), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_cli_with_etcdctl_tls_flags(tls_cluster: tuple[LocalCluster, Pki]) -> None:
    cluster, pki = tls_cluster
    tls = ["--endpoints", ",".join(cluster.endpoints), "--cacert", str(pki.ca),
           "--cert", str(pki.cert), "--key", str(pki.key)]  # fmt: skip
    put = kvstore_cli("put", "via-cli", "tls", *tls)
    assert put.returncode == 0, put.stderr
    got = kvstore_cli("get", "via-cli", *tls)
    assert got.stdout.splitlines() == ["via-cli", "tls"], got.stderr
    health = kvstore_cli("endpoint", "health", *tls)
    assert health.returncode == 0, health.stdout + health.stderr
    assert health.stdout.count("is healthy") == len(cluster.endpoints)


def test_cli_tls_flags_are_checked(tls_cluster: tuple[LocalCluster, Pki]) -> None:
    cluster, pki = tls_cluster
    endpoint = ["--endpoints", cluster.endpoints[0], "--timeout", "3"]
    alone = kvstore_cli("get", "k", *endpoint, "--cacert", str(pki.ca), "--cert", str(pki.cert))
    assert alone.returncode == 1
    assert "--cert and --key go together" in alone.stderr
    missing = kvstore_cli("get", "k", *endpoint, "--cacert", "/nonexistent/ca.pem")
    assert missing.returncode == 1
    assert "--cacert /nonexistent/ca.pem: No such file or directory" in missing.stderr
    # Server-authenticated TLS without a client certificate is refused by client-cert auth.
    no_client_cert = kvstore_cli("get", "k", *endpoint, "--cacert", str(pki.ca))
    assert no_client_cert.returncode == 1


def test_http_api_over_tls_needs_a_client_certificate(
    tls_cluster: tuple[LocalCluster, Pki],
) -> None:
    cluster, pki = tls_cluster
    m = cluster.members[0]
    assert m.http_url.startswith("https://")
    context = ssl.create_default_context(cafile=pki.ca)
    context.load_cert_chain(pki.cert, pki.key)
    with httpx.Client(verify=context, timeout=10) as http:
        put = http.post(m.http_url + "/v3/kv/put", json={"key": "dGxz", "value": "b2s="})
        assert put.status_code == 200, put.text
        assert http.get(m.http_url + "/health").json()["health"] == "true"
    with (
        httpx.Client(verify=ssl.create_default_context(cafile=pki.ca), timeout=10) as http,
        pytest.raises(httpx.HTTPError),
    ):
        http.get(m.http_url + "/health")
    with cluster.client() as c:
        assert c.get(b"tls").kvs[0].value == b"ok"


def test_certificate_common_name_is_the_user_once_auth_is_on(
    tls_cluster: tuple[LocalCluster, Pki],
) -> None:
    """With --client-cert-auth, a verified certificate's CN ("kvstore member") names the
    user when no token comes; a token still wins. Runs last: it turns auth off again."""
    cluster, pki = tls_cluster
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(),
        private_key=pki.key.read_bytes(),
        certificate_chain=pki.cert.read_bytes(),
    )
    with grpc.secure_channel(cluster.endpoints[1], creds) as channel:
        auth, kv = rpc_pb2_grpc.AuthStub(channel), rpc_pb2_grpc.KVStub(channel)
        auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="root", password="pw"), timeout=10)
        auth.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"))
        member = rpc_pb2.AuthUserAddRequest(name="kvstore member")
        member.options.no_password = True
        auth.UserAdd(member)
        auth.RoleAdd(rpc_pb2.AuthRoleAddRequest(name="cn"))
        perm = auth_pb2.Permission(permType=auth_pb2.Permission.READWRITE, key=b"cn/")
        perm.range_end = b"cn0"
        auth.RoleGrantPermission(rpc_pb2.AuthRoleGrantPermissionRequest(name="cn", perm=perm))
        auth.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="kvstore member", role="cn"))
        auth.AuthEnable(rpc_pb2.AuthEnableRequest(), timeout=10)
        kv.Put(rpc_pb2.PutRequest(key=b"cn/x", value=b"1"), timeout=10)
        with pytest.raises(grpc.RpcError) as info:
            kv.Put(rpc_pb2.PutRequest(key=b"elsewhere", value=b"1"), timeout=10)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as info:
            auth.AuthDisable(rpc_pb2.AuthDisableRequest(), timeout=10)  # not root
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        token = auth.Authenticate(rpc_pb2.AuthenticateRequest(name="root", password="pw")).token
        root = (("token", token),)
        kv.Put(rpc_pb2.PutRequest(key=b"elsewhere", value=b"1"), metadata=root, timeout=10)
        auth.AuthDisable(rpc_pb2.AuthDisableRequest(), metadata=root, timeout=10)
    with cluster.client() as c:
        assert c.get(b"elsewhere").kvs[0].value == b"1"
