"""Auth end to end: etcdctl's user/role/auth commands against real etcd and this store
(outputs compared), permissions over gRPC on every member, and auth state surviving
restarts and snapshot installs."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kvstore.api.gen.authpb import auth_pb2
from kvstore.api.gen.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvstore.verify.cluster import RAFT_FLAGS, Kind, LocalCluster
from tests.kvstore.server.conftest import running
from tests.tooling import require_tool

pytestmark = pytest.mark.slow

FAST_HASH = ["--bcrypt-cost", "4"]

# One command a line: "[@user:password] args... [<stdin]".
SCRIPT = """
user list
role list
auth enable
user add root --new-user-password=rootpw
user add root --new-user-password=again
user get root
role add app
role add app
role grant-permission app readwrite /app/ --prefix
role grant-permission app read /ro
role grant-permission app write /from --from-key
role grant-permission nope read /x
role get app
user add alice --new-user-password=alicepw
user grant-role alice app
user grant-role alice nope
user grant-role bob app
user get alice
user get alice --detail
user list
role list
auth enable
put /app/x 1
@alice:alicepw put /app/x 1
@alice:alicepw get /app/x
@alice:wrong get /app/x
@nobody:pw get /app/x
@alice:alicepw put /ro 2
@root:rootpw put /ro 2
@alice:alicepw get /ro
@alice:alicepw put /from/z 3
@alice:alicepw put /zzz 3
@alice:alicepw put /fro 3
@alice:alicepw get /app/ --prefix
@alice:alicepw get / --prefix
@alice:alicepw del /ro
@alice:alicepw user list
@alice:alicepw user get alice
@alice:alicepw user get root
@alice:alicepw role get app
@alice:alicepw role get root
@alice:alicepw role add sneaky
@alice:alicepw auth disable
@root:rootpw user list
@root:rootpw role revoke-permission app /ro
@root:rootpw role revoke-permission app /ro
@alice:alicepw get /ro
@root:rootpw user revoke-role alice root
@root:rootpw role delete root
@root:rootpw user delete root
@root:rootpw user revoke-role root root
@root:rootpw user get bob
@root:rootpw role get nope
@root:rootpw user passwd alice --interactive=false <newpw
@alice:alicepw get /app/x
@alice:newpw get /app/x
@root:rootpw role delete app
@alice:newpw get /app/x
@alice:newpw user get alice
@root:rootpw user delete alice
@root:rootpw user delete alice
@alice:newpw get /app/x
@root:rootpw auth disable
auth disable
user list
role list
role delete root
user revoke-role root root
user delete root
user list
"""

_LOG_LINE = re.compile(r'^\{"level":.*\}$')


def _normalise(text: str) -> str:
    """etcdctl's stderr without the client library's JSON log lines (timestamps, ids)."""
    return "\n".join(line for line in text.splitlines() if not _LOG_LINE.match(line))


def _run_script(etcdctl: str, endpoints: list[str]) -> list[tuple[str, int, str, str]]:
    results = []
    for raw in SCRIPT.strip().splitlines():
        line, _, stdin = raw.partition(" <")
        parts = line.split()
        user = []
        if parts[0].startswith("@"):
            user = ["--user", parts[0][1:]]
            parts = parts[1:]
        proc = subprocess.run(
            [etcdctl, "--endpoints", ",".join(endpoints), *user, *parts],
            input=stdin or None,
            capture_output=True,
            text=True,
            env={**os.environ, "ETCDCTL_API": "3"},
            timeout=60,
            check=False,
        )
        results.append((raw, proc.returncode, proc.stdout, _normalise(proc.stderr)))
    return results


def test_etcdctl_user_role_auth_commands_match_etcd(tmp_path: Path) -> None:
    """The same etcdctl session, error cases included, prints the same things and exits
    the same way against etcd 3.4 and against a 3-member cluster of this store."""
    etcdctl = require_tool("etcdctl")
    require_tool("etcd")
    with running(LocalCluster(tmp_path / "etcd", 1, kind=Kind.ETCD)) as etcd:
        theirs = _run_script(etcdctl, etcd.endpoints)
    ours_cluster = LocalCluster(tmp_path / "ours", 3, extra=RAFT_FLAGS + FAST_HASH)
    with running(ours_cluster) as ours:
        mine = _run_script(etcdctl, ours.endpoints)
    assert any(code != 0 for _, code, _, _ in theirs)  # the script has its error cases
    for expected, got in zip(theirs, mine, strict=True):
        assert got == expected


# -- gRPC ---------------------------------------------------------------------------------


class Caller:
    """Raw etcd stubs on one member, optionally with a token."""

    def __init__(self, channel: grpc.Channel, token: str | None = None) -> None:
        self.kv = rpc_pb2_grpc.KVStub(channel)
        self.auth = rpc_pb2_grpc.AuthStub(channel)
        self.lease = rpc_pb2_grpc.LeaseStub(channel)
        self.maint = rpc_pb2_grpc.MaintenanceStub(channel)
        self.watch = rpc_pb2_grpc.WatchStub(channel)
        self.metadata = (("token", token),) if token else ()


def _error(call: object) -> tuple[grpc.StatusCode, str]:
    assert callable(call)
    with pytest.raises(grpc.RpcError) as info:
        call()
    err = info.value
    assert isinstance(err, grpc.Call)
    return err.code(), err.details() or ""


@pytest.fixture(scope="module")
def auth_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A 3-member cluster that snapshots often, with root and alice (role app: readwrite
    on prefix app/) set up and auth enabled."""
    extra = [*RAFT_FLAGS, *FAST_HASH, "--snapshot-count", "50"]
    with running(LocalCluster(tmp_path_factory.mktemp("auth"), 3, extra=extra)) as cluster:
        with grpc.insecure_channel(cluster.endpoints[0]) as channel:
            a = rpc_pb2_grpc.AuthStub(channel)
            a.UserAdd(rpc_pb2.AuthUserAddRequest(name="root", password="rootpw"), timeout=10)
            a.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"))
            a.UserAdd(rpc_pb2.AuthUserAddRequest(name="alice", password="alicepw"))
            a.RoleAdd(rpc_pb2.AuthRoleAddRequest(name="app"))
            perm = auth_pb2.Permission(permType=auth_pb2.Permission.READWRITE, key=b"app/")
            perm.range_end = b"app0"
            a.RoleGrantPermission(rpc_pb2.AuthRoleGrantPermissionRequest(name="app", perm=perm))
            a.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="alice", role="app"))
            a.AuthEnable(rpc_pb2.AuthEnableRequest(), timeout=10)
        yield cluster


def _token(endpoint: str, name: str, password: str) -> str:
    with grpc.insecure_channel(endpoint) as channel:
        resp = rpc_pb2_grpc.AuthStub(channel).Authenticate(
            rpc_pb2.AuthenticateRequest(name=name, password=password), timeout=10
        )
    return resp.token


def test_a_token_from_one_member_works_on_every_member(auth_cluster: LocalCluster) -> None:
    token = _token(auth_cluster.endpoints[0], "alice", "alicepw")
    assert re.fullmatch(r"[A-Za-z]{16}\.\d+", token)
    for i, endpoint in enumerate(auth_cluster.endpoints):
        with grpc.insecure_channel(endpoint) as channel:
            c = Caller(channel, token)
            put = rpc_pb2.PutRequest(key=f"app/{i}".encode(), value=b"v")
            c.kv.Put(put, metadata=c.metadata, timeout=10)
            got = c.kv.Range(rpc_pb2.RangeRequest(key=put.key), metadata=c.metadata, timeout=10)
            assert got.kvs[0].value == b"v"
            code, details = _error(
                lambda c=c: c.kv.Put(
                    rpc_pb2.PutRequest(key=b"other", value=b"v"), metadata=c.metadata, timeout=10
                )
            )
            assert (code, details) == (
                grpc.StatusCode.PERMISSION_DENIED,
                "etcdserver: permission denied",
            )
        with grpc.insecure_channel(endpoint) as channel:
            code, details = _error(
                lambda channel=channel: rpc_pb2_grpc.KVStub(channel).Range(
                    rpc_pb2.RangeRequest(key=b"app/0"),
                    metadata=(("token", "bogus.1"),),
                    timeout=10,
                )
            )
            assert (code, details) == (
                grpc.StatusCode.UNAUTHENTICATED,
                "etcdserver: invalid auth token",
            )


def test_txn_watch_lease_and_admin_checks(auth_cluster: LocalCluster) -> None:
    alice = _token(auth_cluster.endpoints[1], "alice", "alicepw")
    root = _token(auth_cluster.endpoints[1], "root", "rootpw")
    with grpc.insecure_channel(auth_cluster.endpoints[2]) as channel:
        a, r = Caller(channel, alice), Caller(channel, root)
        # A txn whose failure branch (not taken) writes outside app/ is still refused.
        outside = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"x", value=b"1"))
        inside = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"app/t", value=b"1"))
        txn = rpc_pb2.TxnRequest(success=[inside], failure=[outside])
        code, _ = _error(lambda: a.kv.Txn(txn, metadata=a.metadata, timeout=10))
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert a.kv.Txn(rpc_pb2.TxnRequest(success=[inside]), metadata=a.metadata).succeeded
        # A lease holding a key alice may not write cannot be revoked by her.
        lease = r.lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60), metadata=r.metadata)
        r.kv.Put(rpc_pb2.PutRequest(key=b"x", value=b"1", lease=lease.ID), metadata=r.metadata)
        code, _ = _error(
            lambda: a.lease.LeaseRevoke(
                rpc_pb2.LeaseRevokeRequest(ID=lease.ID), metadata=a.metadata, timeout=10
            )
        )
        assert code == grpc.StatusCode.PERMISSION_DENIED
        r.lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=lease.ID), metadata=r.metadata)
        # Admin-only maintenance; Status needs some user.
        code, details = _error(
            lambda: a.maint.HashKV(rpc_pb2.HashKVRequest(), metadata=a.metadata, timeout=10)
        )
        assert code == grpc.StatusCode.PERMISSION_DENIED
        r.maint.HashKV(rpc_pb2.HashKVRequest(), metadata=r.metadata, timeout=10)
        code, details = _error(lambda: a.maint.Status(rpc_pb2.StatusRequest(), timeout=10))
        assert (code, details) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "etcdserver: user name is empty",
        )
        a.maint.Status(rpc_pb2.StatusRequest(), metadata=a.metadata, timeout=10)
        # A watch outside the permitted range is created cancelled, with etcd's reason.
        requests = iter(
            [
                rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"x")),
                rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"app/w")),
            ]
        )
        stream = a.watch.Watch(_hold(requests), metadata=a.metadata, timeout=10)
        got: list[rpc_pb2.WatchResponse] = []
        for resp in stream:
            got.append(resp)
            if len(got) == 2:
                break
        stream.cancel()  # type: ignore[no-untyped-call]
        first, second = got
        assert (first.created, first.canceled, first.watch_id) == (True, True, -1)
        assert first.cancel_reason == "etcdserver: permission denied"
        assert second.created and not second.canceled


def _hold(requests: Iterator[rpc_pb2.WatchRequest]) -> Iterator[rpc_pb2.WatchRequest]:
    """Send ``requests``, then keep the stream open until it is cancelled."""
    yield from requests
    time.sleep(5)


def test_revoking_a_permission_is_effective_at_once_everywhere(
    auth_cluster: LocalCluster,
) -> None:
    alice = _token(auth_cluster.endpoints[0], "alice", "alicepw")
    root = _token(auth_cluster.endpoints[0], "root", "rootpw")
    with grpc.insecure_channel(auth_cluster.endpoints[0]) as channel:
        r = Caller(channel, root)
        r.auth.RoleAdd(rpc_pb2.AuthRoleAddRequest(name="tmp"), metadata=r.metadata)
        perm = auth_pb2.Permission(permType=auth_pb2.Permission.WRITE, key=b"tmp")
        r.auth.RoleGrantPermission(
            rpc_pb2.AuthRoleGrantPermissionRequest(name="tmp", perm=perm), metadata=r.metadata
        )
        r.auth.UserGrantRole(
            rpc_pb2.AuthUserGrantRoleRequest(user="alice", role="tmp"), metadata=r.metadata
        )
        for endpoint in auth_cluster.endpoints:
            with grpc.insecure_channel(endpoint) as other:
                a = Caller(other, alice)
                a.kv.Put(rpc_pb2.PutRequest(key=b"tmp", value=b"1"), metadata=a.metadata)
        r.auth.RoleRevokePermission(
            rpc_pb2.AuthRoleRevokePermissionRequest(role="tmp", key=b"tmp"), metadata=r.metadata
        )
    for endpoint in auth_cluster.endpoints:
        with grpc.insecure_channel(endpoint) as other:
            a = Caller(other, alice)
            code, _ = _error(
                lambda a=a: a.kv.Put(
                    rpc_pb2.PutRequest(key=b"tmp", value=b"2"), metadata=a.metadata, timeout=10
                )
            )
            assert code == grpc.StatusCode.PERMISSION_DENIED


def test_auth_state_survives_restart_and_snapshot_install(auth_cluster: LocalCluster) -> None:
    root = _token(auth_cluster.endpoints[0], "root", "rootpw")
    lagging = auth_cluster.members[2]
    lagging.kill()
    with grpc.insecure_channel(auth_cluster.endpoints[0]) as channel:
        r = Caller(channel, root)
        # The killed member may have been the leader: wait until the others write again (a
        # put is safe to repeat, unlike UserAdd).
        deadline = time.monotonic() + 30
        while True:
            try:
                r.kv.Put(rpc_pb2.PutRequest(key=b"app/fill", value=b"-"), metadata=r.metadata,
                         timeout=5)  # fmt: skip
                break
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        r.auth.UserAdd(
            rpc_pb2.AuthUserAddRequest(name="late", password="latepw"), metadata=r.metadata
        )
        r.auth.UserGrantRole(
            rpc_pb2.AuthUserGrantRoleRequest(user="late", role="app"), metadata=r.metadata
        )
        # Past --snapshot-count: the lagging member catches up from a snapshot.
        for i in range(120):
            r.kv.Put(
                rpc_pb2.PutRequest(key=b"app/fill", value=str(i).encode()), metadata=r.metadata
            )
    auth_cluster.restart(lagging)
    auth_cluster.wait_healthy()
    for member in list(auth_cluster.members):
        if member is not lagging:
            auth_cluster.restart(member)
    auth_cluster.wait_healthy()
    for endpoint in auth_cluster.endpoints:
        token = _token(endpoint, "late", "latepw")
        with grpc.insecure_channel(endpoint) as channel:
            c = Caller(channel, token)
            got = c.kv.Range(rpc_pb2.RangeRequest(key=b"app/fill"), metadata=c.metadata, timeout=10)
            assert got.kvs[0].value == b"119"
            code, _ = _error(
                lambda c=c: c.kv.Range(
                    rpc_pb2.RangeRequest(key=b"elsewhere"), metadata=c.metadata, timeout=10
                )
            )
            assert code == grpc.StatusCode.PERMISSION_DENIED
            status = c.auth.AuthStatus(
                rpc_pb2.AuthStatusRequest(),
                metadata=(("token", _token(endpoint, "root", "rootpw")),),
            )
            assert status.enabled
    assert "restored snapshot" in lagging.log_text()  # it did catch up from a snapshot


def test_jwt_tokens_grow_old_when_the_auth_state_changes(tmp_path: Path) -> None:
    """--auth-token jwt: tokens are signed (header.claims.signature) and carry the auth
    revision; after a change the old token is refused as etcd refuses it."""
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = tmp_path / "jwt.key", tmp_path / "jwt.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    option = f"jwt,pub-key={public},priv-key={private},sign-method=ES256,ttl=1m"
    cluster = LocalCluster(
        tmp_path / "c", 1, extra=[*RAFT_FLAGS, *FAST_HASH, "--auth-token", option]
    )
    with running(cluster), grpc.insecure_channel(cluster.endpoints[0]) as channel:
        a = rpc_pb2_grpc.AuthStub(channel)
        a.UserAdd(rpc_pb2.AuthUserAddRequest(name="root", password="rootpw"), timeout=10)
        a.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"))
        a.AuthEnable(rpc_pb2.AuthEnableRequest(), timeout=10)
        token = _token(cluster.endpoints[0], "root", "rootpw")
        assert token.count(".") == 2 and token.startswith("eyJ")
        c = Caller(channel, token)
        c.kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"v"), metadata=c.metadata, timeout=10)
        c.auth.RoleAdd(rpc_pb2.AuthRoleAddRequest(name="new"), metadata=c.metadata, timeout=10)
        code, details = _error(
            lambda: c.kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"w"), metadata=c.metadata)
        )
        assert (code, details) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "etcdserver: revision of auth store is old",
        )
        fresh = Caller(channel, _token(cluster.endpoints[0], "root", "rootpw"))
        fresh.kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"w"), metadata=fresh.metadata)
