"""etcdctl (Debian etcd-client, API v3), a client nobody here wrote, against a real
3-member cluster of ``kvstore serve`` processes."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from kvstore.api.gen.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvstore.server import snapshot_file
from kvstore.server.restore import load_store
from kvstore.storage.mvcc_types import RangeRequest
from kvstore.verify.cluster import LocalCluster
from tests.kvstore.server.conftest import Etcdctl

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(shared_cluster: LocalCluster) -> LocalCluster:
    """This module's tests never kill a member: they share the session's cluster."""
    return shared_cluster


def _json(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def _revision(etcdctl: Etcdctl, key: str) -> int:
    out = _json(etcdctl("get", key, "-w", "json"))
    header = out["header"]
    assert isinstance(header, dict)
    return int(header["revision"])


def test_put_get_delete_with_prefix(etcdctl: Etcdctl, cluster: LocalCluster) -> None:
    for key, value in [("app/a", "1"), ("app/b", "2"), ("apq", "x")]:
        assert etcdctl("put", key, value).stdout.strip() == "OK"
    # Every member serves the read (linearizable by default).
    for ep in cluster.endpoints:
        got = etcdctl("get", "app/", "--prefix", endpoints=[ep]).stdout.split()
        assert got == ["app/a", "1", "app/b", "2"]
    assert etcdctl("get", "app/a", "--print-value-only").stdout.strip() == "1"
    assert etcdctl("del", "app/", "--prefix").stdout.strip() == "2"
    assert etcdctl("get", "app/", "--prefix").stdout.strip() == ""
    assert etcdctl("get", "apq", "--print-value-only").stdout.strip() == "x"


def test_get_at_revision_and_json_header(etcdctl: Etcdctl, cluster: LocalCluster) -> None:
    etcdctl("put", "rev-key", "old")
    old_rev = _revision(etcdctl, "rev-key")
    etcdctl("put", "rev-key", "new")
    assert etcdctl("get", "rev-key", "--print-value-only").stdout.strip() == "new"
    assert etcdctl("get", "rev-key", f"--rev={old_rev}", "--print-value-only").stdout.strip() == (
        "old"
    )
    out = _json(etcdctl("get", "rev-key", "-w", "json", endpoints=[cluster.endpoints[1]]))
    header = out["header"]
    assert isinstance(header, dict)
    assert int(header["member_id"]) == cluster.member_id(cluster.members[1])
    assert int(header["cluster_id"]) != 0
    assert int(header["raft_term"]) >= 1
    kvs = out["kvs"]
    assert isinstance(kvs, list)
    assert base64.b64decode(kvs[0]["value"]) == b"new"
    assert int(kvs[0]["version"]) == 2
    assert int(kvs[0]["mod_revision"]) == int(header["revision"])


def test_get_options_sort_limit_keys_and_count_only(
    etcdctl: Etcdctl, cluster: LocalCluster
) -> None:
    for key, value in [("opt/c", "3"), ("opt/a", "1"), ("opt/b", "2")]:
        etcdctl("put", key, value)
    etcdctl("put", "opt/a", "1again")  # opt/a now has the newest mod revision
    newest_first = etcdctl(
        "get", "opt/", "--prefix", "--sort-by=MODIFY", "--order=DESCEND", "--limit=2", "--keys-only"
    ).stdout.split()
    assert newest_first == ["opt/a", "opt/b"]
    by_key = etcdctl("get", "opt/", "--prefix", "--order=DESCEND", "--keys-only").stdout.split()
    assert by_key == ["opt/c", "opt/b", "opt/a"]
    with cluster.client() as c:  # etcdctl 3.4 has no --count-only
        counted = c.get(b"opt/", prefix=True, count_only=True)
        assert counted.count == 3
        assert not counted.kvs
        limited = c.get(b"opt/", prefix=True, limit=1)
        assert limited.more and limited.count == 3 and len(limited.kvs) == 1
    ranged = etcdctl("get", "opt/a", "opt/c", "--keys-only").stdout.split()  # [a, c)
    assert ranged == ["opt/a", "opt/b"]
    assert etcdctl("defrag").returncode == 0


def test_txn_from_stdin(etcdctl: Etcdctl) -> None:
    etcdctl("put", "txn-key", "ready")
    script = (
        'value("txn-key") = "ready"\n\nput txn-key done\nput txn-other 1\n\nput txn-key failed\n\n'
    )
    out = etcdctl("txn", stdin=script).stdout
    assert out.startswith("SUCCESS")
    assert etcdctl("get", "txn-key", "--print-value-only").stdout.strip() == "done"
    # The same compare now fails: the failure branch runs.
    out = etcdctl("txn", stdin=script).stdout
    assert out.startswith("FAILURE")
    assert etcdctl("get", "txn-key", "--print-value-only").stdout.strip() == "failed"


def test_watch_from_revision_sees_history_and_live_events(
    etcdctl_path: str, etcdctl: Etcdctl, cluster: LocalCluster
) -> None:
    etcdctl("put", "watched/1", "a")
    start = _revision(etcdctl, "watched/1")
    env = {**os.environ, "ETCDCTL_API": "3"}
    watcher = subprocess.Popen(
        [etcdctl_path, "--endpoints", cluster.endpoints[2], "watch", "--prefix", "watched/",
         f"--rev={start}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        time.sleep(1.0)
        etcdctl("put", "watched/2", "b", endpoints=[cluster.endpoints[0]])
        etcdctl("del", "watched/1", endpoints=[cluster.endpoints[1]])
        time.sleep(1.5)
    finally:
        watcher.terminate()
        out, _ = watcher.communicate(timeout=10)
    lines = out.split()
    assert lines == ["PUT", "watched/1", "a", "PUT", "watched/2", "b", "DELETE", "watched/1"]


def test_lease_grant_keepalive_timetolive_revoke(etcdctl: Etcdctl) -> None:
    granted = etcdctl("lease", "grant", "60").stdout.split()
    lease_id = granted[1]
    etcdctl("put", "leased", "v", f"--lease={lease_id}")
    ttl = etcdctl("lease", "timetolive", lease_id, "--keys").stdout
    assert "granted with TTL(60s)" in ttl
    assert "attached keys([leased])" in ttl
    kept = etcdctl("lease", "keep-alive", "--once", lease_id).stdout
    assert f"lease {lease_id} keepalived with TTL(60)" in kept
    assert lease_id in etcdctl("lease", "list").stdout
    assert "revoked" in etcdctl("lease", "revoke", lease_id).stdout
    assert etcdctl("get", "leased").stdout.strip() == ""
    gone = etcdctl("lease", "timetolive", lease_id).stdout
    assert "already expired" in gone


def test_endpoint_status_and_health(etcdctl: Etcdctl, cluster: LocalCluster) -> None:
    statuses = json.loads(etcdctl("endpoint", "status", "-w", "json").stdout)
    assert len(statuses) == 3
    leaders = {s["Status"]["leader"] for s in statuses}
    assert len(leaders) == 1
    member_ids = {s["Status"]["header"]["member_id"] for s in statuses}
    assert leaders <= member_ids
    assert all(s["Status"]["raftTerm"] >= 1 for s in statuses)
    health = etcdctl("endpoint", "health").stderr + etcdctl("endpoint", "health").stdout
    assert health.count("is healthy") == 3


def test_snapshot_save(etcdctl: Etcdctl, cluster: LocalCluster, workdir: Path) -> None:
    etcdctl("put", "in-snapshot", "yes")
    target = workdir / "snap.db"
    etcdctl("snapshot", "save", str(target), endpoints=[cluster.endpoints[0]])
    data = target.read_bytes()
    assert len(data) % 512 == 32  # etcd's database (whole pages) plus its SHA-256
    state = snapshot_file.read(data)
    assert sorted(m.name for m in state.members) == ["m1", "m2", "m3"]
    store = load_store(state)
    assert store.range(RangeRequest(key=b"in-snapshot")).kvs[0].value == b"yes"


def test_snapshot_stream_is_shaped_as_etcds(cluster: LocalCluster) -> None:
    """Chunks of the database whose ``remaining_bytes`` count down to 0, then the SHA-256
    of the database alone (what etcd's clients expect)."""
    with cluster.client() as c:
        for i in range(200):
            c.put(f"stream/{i:03}".encode(), b"s" * 500)
    with grpc.insecure_channel(cluster.endpoints[0]) as channel:
        stub = rpc_pb2_grpc.MaintenanceStub(channel)
        responses = list(stub.Snapshot(rpc_pb2.SnapshotRequest(), timeout=30))
    *chunks, last = responses
    db = b"".join(r.blob for r in chunks)
    assert len(chunks) > 1 and all(len(r.blob) == 32 * 1024 for r in chunks[:-1])
    assert [r.remaining_bytes for r in chunks] == [
        len(db) - sum(len(r.blob) for r in chunks[: i + 1]) for i in range(len(chunks))
    ]
    assert chunks[-1].remaining_bytes == 0
    assert last.remaining_bytes == 0 and last.blob == hashlib.sha256(db).digest()
    assert len(db) % 4096 == 0
    assert snapshot_file.read(db + last.blob).revision >= 200


def test_compaction_then_old_revision_is_refused(etcdctl: Etcdctl) -> None:
    etcdctl("put", "compact-me", "1")
    old = _revision(etcdctl, "compact-me")
    etcdctl("put", "compact-me", "2")
    current = _revision(etcdctl, "compact-me")
    assert f"compacted revision {current}" in etcdctl("compaction", str(current)).stdout
    refused = etcdctl("get", "compact-me", f"--rev={old}", check=False)
    assert refused.returncode != 0
    assert "required revision has been compacted" in refused.stderr
    assert etcdctl("get", "compact-me", "--print-value-only").stdout.strip() == "2"


def test_alarm_list_is_empty(etcdctl: Etcdctl) -> None:
    result = etcdctl("alarm", "list")
    assert result.stdout.strip() == ""


def test_member_update_changes_peer_urls(etcdctl: Etcdctl, cluster: LocalCluster) -> None:
    m = cluster.members[2]
    member_id = f"{cluster.member_id(m):x}"
    extra = "http://127.0.0.1:1"
    out = etcdctl("member", "update", member_id, f"--peer-urls={m.peer_url},{extra}").stdout
    assert "updated" in out
    assert f"{m.peer_url},{extra}" in etcdctl("member", "list").stdout
    etcdctl("member", "update", member_id, f"--peer-urls={m.peer_url}")
    listed = etcdctl("member", "list").stdout
    assert extra not in listed
    with cluster.client() as c:
        c.put(b"after-update", b"ok")  # the member still takes part
    assert etcdctl("get", "after-update", endpoints=[m.endpoint]).stdout.split() == [
        "after-update", "ok",
    ]  # fmt: skip


def test_member_list_add_promote_remove(etcdctl: Etcdctl, cluster: LocalCluster) -> None:
    listed = etcdctl("member", "list").stdout.strip().splitlines()
    assert len(listed) == 3
    names = sorted(line.split(", ")[2] for line in listed)
    assert names == ["m1", "m2", "m3"]
    assert all(", started, " in line for line in listed)
    # Add a learner with etcdctl, start it, promote it, then remove it.
    new = cluster.new_member(name="m4")
    added = etcdctl("member", "add", "m4", f"--peer-urls={new.peer_url}", "--learner").stdout
    assert "Member" in added and "added to cluster" in added
    new_id = added.split()[1]
    cluster.join(new)
    cluster.wait_healthy([new])
    deadline = time.monotonic() + 20
    while True:
        promoted = etcdctl("member", "promote", new_id, check=False)
        if promoted.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert promoted.returncode == 0, promoted.stderr
    after = etcdctl("member", "list").stdout
    assert f"{new_id}, started, m4, {new.peer_url}, {new.client_url}, false" in after
    assert "removed" in etcdctl("member", "remove", new_id).stdout
    assert new.proc is not None
    assert new.proc.wait(timeout=15) == 0  # a removed member stops itself, cleanly
    cluster.members.remove(new)
    assert new_id not in etcdctl("member", "list").stdout
