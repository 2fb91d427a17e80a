"""Response details etcd clients print or compare, shaped as etcd shapes them (each found
by running etcdctl 3.5 against etcd and the store side by side)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from kvstore.api.gen.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvstore.verify.cluster import RAFT_FLAGS, LocalCluster
from tests.kvstore.server.conftest import running

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(shared_cluster: LocalCluster) -> LocalCluster:
    """This module's tests never kill a member: they share the session's cluster."""
    return shared_cluster


def test_nested_txn_responses_carry_only_the_txn_revision_a_nested_txn_none(
    cluster: LocalCluster,
) -> None:
    with grpc.insecure_channel(cluster.endpoints[0]) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        kv.Put(rpc_pb2.PutRequest(key=b"shape/a", value=b"1"), timeout=10)
        put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"shape/b", value=b"2"))
        get = rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"shape/a"))
        delete = rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"x"))
        inner = rpc_pb2.RequestOp(request_txn=rpc_pb2.TxnRequest(success=[get]))
        resp = kv.Txn(rpc_pb2.TxnRequest(success=[put, get, delete, inner]), timeout=10)
    assert resp.header.member_id and resp.header.cluster_id
    only_revision = rpc_pb2.ResponseHeader(revision=resp.header.revision)
    nested = [
        resp.responses[0].response_put.header,
        resp.responses[1].response_range.header,
        resp.responses[2].response_delete_range.header,
        resp.responses[3].response_txn.responses[0].response_range.header,
    ]
    assert nested == [only_revision] * 4
    # A nested txn's own header is there but empty, as etcd sends it.
    inner_txn = resp.responses[3].response_txn
    assert inner_txn.HasField("header") and inner_txn.header == rpc_pb2.ResponseHeader()


def test_cluster_api_headers_carry_no_revision(cluster: LocalCluster) -> None:
    with grpc.insecure_channel(cluster.endpoints[1]) as channel:
        resp = rpc_pb2_grpc.ClusterStub(channel).MemberList(rpc_pb2.MemberListRequest(), timeout=10)
    assert resp.header.revision == 0
    assert resp.header.member_id == cluster.member_id(cluster.members[1])
    assert resp.header.raft_term >= 1


def test_compaction_shows_in_hash_kv_and_status(tmp_path: Path) -> None:
    """HashKV says -1 until the first compaction, as etcd; Status's dbSize is the data's
    bytes on disk and dbSizeInUse the live part, which a compaction shrinks."""
    single = LocalCluster(tmp_path, 1, extra=RAFT_FLAGS, cluster_name="compacted")
    with running(single) as c, grpc.insecure_channel(c.endpoints[0]) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        maintenance = rpc_pb2_grpc.MaintenanceStub(channel)
        for _ in range(100):
            rev = kv.Put(
                rpc_pb2.PutRequest(key=b"h", value=b"v" * 1024), timeout=10
            ).header.revision
        before = maintenance.HashKV(rpc_pb2.HashKVRequest(), timeout=10)
        kv.Compact(rpc_pb2.CompactionRequest(revision=rev, physical=True), timeout=10)
        after = maintenance.HashKV(rpc_pb2.HashKVRequest(), timeout=10)
        status = maintenance.Status(rpc_pb2.StatusRequest(), timeout=10)
        data_dir = c.members[0].data_dir
        on_disk = sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file())
    assert (before.compact_revision, after.compact_revision) == (-1, rev)
    assert abs(status.dbSize - on_disk) <= 4096  # only the member's own bookkeeping between
    assert 0 < status.dbSizeInUse < status.dbSize - 50 * 1024  # 99 old versions gone
