"""Snapshots move both ways between etcd (Debian etcd-server/etcd-client 3.4) and this store.

Store -> etcd: the store's Maintenance.Snapshot, saved by ``etcdctl snapshot save``, is read
by ``etcdctl snapshot status`` (bbolt's own consistency check included) with the figures
``kvstore snapshot status`` computes, restored by ``etcdctl snapshot restore``, and the etcd
started from it answers every read as the store did. etcd -> store: the reverse, through
``kvstore snapshot restore``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kvstore.api.gen.etcdserverpb import rpc_pb2
from kvstore.client import ClientError, SyncClient
from kvstore.server import snapshot_file
from kvstore.server.restore import load_store
from kvstore.server.snapshot_status import status
from kvstore.storage.mvcc_types import RangeRequest
from kvstore.verify.cluster import RAFT_FLAGS, Kind, LocalCluster
from tests.kvstore.server.conftest import running
from tests.tooling import require_tool

pytestmark = pytest.mark.slow

ALL = b"\0"
"""Key and range end that select the whole key space."""
LEASE_TTL = 600


@pytest.fixture(scope="module")
def etcdctl_bin() -> str:
    return require_tool("etcdctl")


@pytest.fixture(scope="module")
def etcd_bin() -> str:
    return require_tool("etcd")


def _etcdctl(etcdctl: str, *args: str, endpoint: str | None = None) -> str:
    argv = [etcdctl, *(["--endpoints", endpoint] if endpoint else []), *args]
    env = {**os.environ, "ETCDCTL_API": "3"}
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert result.returncode == 0, f"etcdctl {' '.join(args)}: {result.stdout}\n{result.stderr}"
    return result.stdout


def _workload(c: SyncClient) -> tuple[int, int]:
    """Puts, overwrites, deletes, a txn, a lease with keys, a revoked lease and a
    compaction; returns (compaction revision, lease id)."""
    lease = c.lease_grant(LEASE_TTL, lease_id=0x7E57).ID
    gone = c.lease_grant(LEASE_TTL, lease_id=0x7E58).ID
    c.put(b"a", b"1")
    c.put(b"b", b"1")
    c.put(b"a", b"2")
    c.put(b"dir/x", b"x", lease=lease)
    c.put(b"dir/y", b"y", lease=gone)
    c.delete(b"b")
    c.txn(
        rpc_pb2.TxnRequest(
            success=[
                rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"t1", value=b"one")),
                rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"t2", value=b"two")),
                rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"a")),
            ]
        )
    )
    compact_at = c.put(b"a", b"3").header.revision
    c.put(b"b", b"again")
    c.lease_revoke(gone)
    c.put(b"big", b"v" * 20_000)  # spans overflow pages
    for i in range(300):  # enough keys for branch pages
        c.put(f"many/{i:04}".encode(), b"m" * 40)
    c.put(b"many/0001", b"overwritten")
    c.delete(b"many/0002")
    c.compact(compact_at)
    return compact_at, lease


def _kvs(resp: rpc_pb2.RangeResponse) -> list[tuple[bytes, int, int, int, bytes, int]]:
    return [
        (k.key, k.create_revision, k.mod_revision, k.version, k.value, k.lease) for k in resp.kvs
    ]


def _observe(c: SyncClient, compact_at: int, lease: int) -> dict[str, object]:
    """Everything a client can read of the state: the key space at every readable revision,
    what a read below the compaction says, and the leases."""
    current = c.get(ALL, range_end=ALL, count_only=True).header.revision
    reads = {
        rev: _kvs(c.get(ALL, range_end=ALL, revision=rev)) for rev in range(compact_at, current + 1)
    }
    try:
        c.get(ALL, range_end=ALL, revision=compact_at - 1)
        below = "served"
    except ClientError as exc:
        below = f"{exc.code.name}: {exc.details}"
    ttl = c.lease_time_to_live(lease, keys=True)
    assert 0 < ttl.TTL <= LEASE_TTL
    gone = c.lease_time_to_live(0x7E58)
    return {
        "revision": current,
        "reads": reads,
        "below_compaction": below,
        "lease": (ttl.ID, ttl.grantedTTL, sorted(ttl.keys)),
        "revoked_lease_ttl": gone.TTL,
    }


def _client(cluster: LocalCluster) -> SyncClient:
    return cluster.client(timeout=15)


@dataclass(frozen=True)
class Saved:
    """A snapshot file and what the server it was taken from answered."""

    path: Path
    compact_at: int
    lease: int
    observed: dict[str, object]


@pytest.fixture
def kvstore_snapshot(tmp_path: Path, etcdctl_bin: str) -> Iterator[Saved]:
    """A snapshot of a one-member store after the workload."""
    with running(LocalCluster(tmp_path / "kv", 1, extra=RAFT_FLAGS)) as kv:
        with _client(kv) as c:
            compact_at, lease = _workload(c)
            observed = _observe(c, compact_at, lease)
        path = tmp_path / "kvstore.db"
        _etcdctl(etcdctl_bin, "snapshot", "save", str(path), endpoint=kv.endpoints[0])
    yield Saved(path, compact_at, lease, observed)


def _restore_etcd(etcdctl: str, snap: Path, cluster: LocalCluster) -> None:
    (m,) = cluster.members
    _etcdctl(
        etcdctl, "snapshot", "restore", str(snap),
        "--name", m.name, "--data-dir", str(m.data_dir),
        "--initial-cluster", cluster.initial_cluster(),
        "--initial-cluster-token", cluster.token,
        "--initial-advertise-peer-urls", m.peer_url,
    )  # fmt: skip


def test_etcdctl_reads_and_restores_a_store_snapshot_and_etcd_answers_the_same(
    tmp_path: Path,
    etcdctl_bin: str,
    etcd_bin: str,
    kvstore_snapshot: Saved,
) -> None:
    snap, seen = kvstore_snapshot.path, kvstore_snapshot.observed
    # etcdctl (bbolt 1.3's consistency check included) reads it with our figures.
    theirs = json.loads(_etcdctl(etcdctl_bin, "snapshot", "status", str(snap), "-w", "json"))
    data = snap.read_bytes()
    ours = status(snapshot_file.database_of(data))
    assert theirs == ours.as_json()
    assert theirs["revision"] == seen["revision"]
    assert theirs["totalSize"] == len(data) - 32
    # etcdctl restores it and the etcd started from it answers as the store did.
    etcd = LocalCluster(tmp_path / "etcd", 1, kind=Kind.ETCD, extra=RAFT_FLAGS)
    _restore_etcd(etcdctl_bin, snap, etcd)
    with running(etcd), _client(etcd) as c:
        got = _observe(c, kvstore_snapshot.compact_at, kvstore_snapshot.lease)
        assert got == seen
        # etcd goes on writing into the database we laid out (bbolt splits, merges and
        # frees our pages), and its next snapshot still reads back here.
        revision = int(seen["revision"])  # type: ignore[call-overload]
        assert c.put(b"after", b"restore").header.revision == revision + 1
        c.delete(b"many/", prefix=True)
        c.compact(revision + 2)
        again = tmp_path / "again.db"
        _etcdctl(etcdctl_bin, "snapshot", "save", str(again), endpoint=etcd.endpoints[0])
    state = snapshot_file.read(again.read_bytes())
    assert (state.revision, state.compact_revision) == (revision + 2, revision + 2)
    live = load_store(state).range(RangeRequest(key=ALL, range_end=ALL))
    assert [kv.key for kv in live.kvs] == [b"a", b"after", b"b", b"big", b"dir/x", b"t1", b"t2"]


def test_kvstore_restores_an_etcd_snapshot_and_answers_as_etcd_did(
    tmp_path: Path, etcdctl_bin: str, etcd_bin: str
) -> None:
    with running(LocalCluster(tmp_path / "etcd", 1, kind=Kind.ETCD, extra=RAFT_FLAGS)) as etcd:
        with _client(etcd) as c:
            compact_at, lease = _workload(c)
            seen = _observe(c, compact_at, lease)
        snap = tmp_path / "etcd.db"
        _etcdctl(etcdctl_bin, "snapshot", "save", str(snap), endpoint=etcd.endpoints[0])
    # Our status figures are etcdctl's for a file etcd wrote, too.
    theirs = json.loads(_etcdctl(etcdctl_bin, "snapshot", "status", str(snap), "-w", "json"))
    assert status(snapshot_file.database_of(snap.read_bytes())).as_json() == theirs
    kv = LocalCluster(tmp_path / "kv", 1, extra=RAFT_FLAGS)
    _kvstore_restore(snap, kv)
    with running(kv), _client(kv) as c:
        assert _observe(c, compact_at, lease) == seen
        # The restored store goes on from there: writes get the next revisions.
        assert c.put(b"after", b"restore").header.revision == int(seen["revision"]) + 1  # type: ignore[call-overload]


def test_a_truncated_etcd_snapshot_is_refused_precisely(
    tmp_path: Path, kvstore_snapshot: Saved
) -> None:
    snap = kvstore_snapshot.path
    cut = tmp_path / "cut.db"
    cut.write_bytes(snap.read_bytes()[:-1000])  # a copy cut short
    result = subprocess.run(
        [sys.executable, "-m", "kvstore.cli", "snapshot", "restore", str(cut),
         "--data-dir", str(tmp_path / "never")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "snapshot missing hash but --skip-hash-check=false" in result.stderr
    assert "Traceback" not in result.stderr
    skipped = subprocess.run(
        [sys.executable, "-m", "kvstore.cli", "snapshot", "restore", str(cut),
         "--skip-hash-check", "--data-dir", str(tmp_path / "never")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert skipped.returncode == 1
    assert "database truncated" in skipped.stderr
    assert "Traceback" not in skipped.stderr
    assert not (tmp_path / "never").exists()


def _kvstore_restore(snap: Path, cluster: LocalCluster, *extra: str) -> None:
    for m in cluster.members:
        result = subprocess.run(
            [
                sys.executable, "-m", "kvstore.cli", "snapshot", "restore", str(snap),
                "--name", m.name, "--data-dir", str(m.data_dir),
                "--initial-cluster", cluster.initial_cluster(),
                "--initial-cluster-token", cluster.token,
                "--initial-advertise-peer-urls", m.peer_url, *extra,
            ],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr


def test_one_snapshot_restored_on_three_members_forms_a_cluster(
    tmp_path: Path, kvstore_snapshot: Saved
) -> None:
    """As with etcd: the same file restored on every member, each with its own name."""
    kv = LocalCluster(tmp_path / "three", 3, extra=RAFT_FLAGS, cluster_name="restored")
    _kvstore_restore(kvstore_snapshot.path, kv)
    with running(kv):
        for m in kv.members:
            with kv.client([m]) as c:
                got = _observe(c, kvstore_snapshot.compact_at, kvstore_snapshot.lease)
                assert got == kvstore_snapshot.observed, m.name
        with _client(kv) as c:
            assert sorted(x.name for x in c.member_list().members) == ["m1", "m2", "m3"]
            revision = int(kvstore_snapshot.observed["revision"])  # type: ignore[call-overload]
            assert c.put(b"after", b"restore").header.revision == revision + 1


def _etcdctl_result(
    etcdctl: str, endpoint: str, *args: str, user: str | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [etcdctl, "--endpoints", endpoint, *([f"--user={user}"] if user else []), *args]
    env = {**os.environ, "ETCDCTL_API": "3"}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)


def _check_auth(etcdctl: str, endpoint: str) -> None:
    """What the users, roles and enabled flag set up by :func:`_set_up_auth` allow."""
    read = _etcdctl_result(etcdctl, endpoint, "get", "/data/x", "--print-value-only",
                           user="alice:alice-pw")  # fmt: skip
    assert (read.returncode, read.stdout.strip()) == (0, "1"), read.stderr
    denied = _etcdctl_result(etcdctl, endpoint, "put", "/data/x", "2", user="alice:alice-pw")
    assert denied.returncode != 0 and "permission denied" in denied.stderr
    wrong = _etcdctl_result(etcdctl, endpoint, "get", "/data/x", user="alice:nope")
    assert wrong.returncode != 0 and "authentication failed" in wrong.stderr
    anonymous = _etcdctl_result(etcdctl, endpoint, "get", "/data/x")
    assert anonymous.returncode != 0 and "user name is empty" in anonymous.stderr


def _set_up_auth(etcdctl: str, endpoint: str) -> None:
    for args in (
        ("put", "/data/x", "1"),
        ("user", "add", "root:root-pw"),
        ("user", "add", "alice:alice-pw"),
        ("role", "add", "reader"),
        ("role", "grant-permission", "reader", "read", "/data/", "--prefix"),
        ("user", "grant-role", "alice", "reader"),
        ("auth", "enable"),
    ):
        result = _etcdctl_result(etcdctl, endpoint, *args)
        assert result.returncode == 0, f"{args}: {result.stderr}"


def test_users_roles_and_auth_move_both_ways(tmp_path: Path, etcdctl_bin: str) -> None:
    """etcd's password hashes, roles and enabled flag work in the store after a restore,
    and the store's in etcd: one snapshot each way, checked by etcdctl as a user would."""
    with running(LocalCluster(tmp_path / "etcd", 1, kind=Kind.ETCD, extra=RAFT_FLAGS)) as etcd:
        _set_up_auth(etcdctl_bin, etcd.endpoints[0])
        from_etcd = tmp_path / "from-etcd.db"
        saved = _etcdctl_result(etcdctl_bin, etcd.endpoints[0], "snapshot", "save",
                                str(from_etcd), user="root:root-pw")  # fmt: skip
        assert saved.returncode == 0, saved.stderr
    kv = LocalCluster(tmp_path / "kv", 1, extra=RAFT_FLAGS, cluster_name="auth-restored")
    _kvstore_restore(from_etcd, kv)
    try:
        # Not `running` nor `start`: they wait on Status, which needs a user once auth is on.
        kv.members[0].start(kv.initial_cluster(), "new", kv.token)
        deadline = time.monotonic() + 30
        while _etcdctl_result(etcdctl_bin, kv.endpoints[0], "endpoint", "status",
                              user="root:root-pw").returncode:  # fmt: skip
            assert time.monotonic() < deadline, "the restored member never served\n" + kv.logs()
            time.sleep(0.3)
        _check_auth(etcdctl_bin, kv.endpoints[0])
        from_store = tmp_path / "from-store.db"
        saved = _etcdctl_result(etcdctl_bin, kv.endpoints[0], "snapshot", "save",
                                str(from_store), user="root:root-pw")  # fmt: skip
        assert saved.returncode == 0, saved.stderr
    finally:
        kv.stop()
    back = LocalCluster(tmp_path / "etcd-again", 1, kind=Kind.ETCD, extra=RAFT_FLAGS)
    _restore_etcd(etcdctl_bin, from_store, back)
    with running(back):
        _check_auth(etcdctl_bin, back.endpoints[0])
