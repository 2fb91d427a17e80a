"""Watches that start in the past, as etcd's clients use them: a watch at exactly the
compaction revision is served (etcd cancels only below it, and every client resumes from
``compact_revision`` after ErrCompacted), and the backlog comes packed, up to 1,000
revisions a response, as etcd sends it."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import pytest

from kvstore.api.gen.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvstore.client import SyncClient
from kvstore.server.keyrange import prefix_end
from kvstore.verify.cluster import LocalCluster


@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("watch-history"), 1, cluster_name="wh")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@contextmanager
def _watch(
    cluster: LocalCluster, prefix: bytes, start_revision: int
) -> Iterator[Iterator[rpc_pb2.WatchResponse]]:
    requests: queue.Queue[rpc_pb2.WatchRequest | None] = queue.Queue()

    def outgoing() -> Iterator[rpc_pb2.WatchRequest]:
        while (req := requests.get()) is not None:
            yield req

    with grpc.insecure_channel(cluster.members[0].endpoint) as channel:
        responses = iter(rpc_pb2_grpc.WatchStub(channel).Watch(outgoing(), timeout=60))
        create = rpc_pb2.WatchCreateRequest(
            key=prefix, range_end=prefix_end(prefix), start_revision=start_revision
        )
        requests.put(rpc_pb2.WatchRequest(create_request=create))
        try:
            first = next(responses)
            assert first.created and not first.canceled, first
            yield responses
        finally:
            requests.put(None)


def _puts(cluster: LocalCluster, prefix: bytes, n: int) -> list[int]:
    with SyncClient(cluster.endpoints, timeout=10) as client:
        return [client.put(prefix + b"%d" % (i % 7), b"v%d" % i).header.revision for i in range(n)]


def _read_events(
    watch: Iterator[rpc_pb2.WatchResponse], n: int
) -> tuple[list[int], list[rpc_pb2.WatchResponse]]:
    """The revisions of the next ``n`` events and the responses that carried them."""
    revisions: list[int] = []
    responses: list[rpc_pb2.WatchResponse] = []
    while len(revisions) < n:
        resp = next(watch)
        assert not resp.canceled, resp.cancel_reason
        assert resp.events, resp
        responses.append(resp)
        revisions.extend(ev.kv.mod_revision for ev in resp.events)
    return revisions, responses


def _assert_level(
    cluster: LocalCluster, watch: Iterator[rpc_pb2.WatchResponse], prefix: bytes
) -> None:
    """Nothing more from history: the next response is a new put, alone."""
    (rev,) = _puts(cluster, prefix, 1)
    resp = next(watch)
    assert [ev.kv.mod_revision for ev in resp.events] == [rev]


def test_a_watch_at_the_compaction_revision_is_served(member: LocalCluster) -> None:
    prefix = b"at-compact/"
    revs = _puts(member, prefix, 5)
    compact_at = revs[2]
    with SyncClient(member.endpoints, timeout=10) as client:
        client.compact(compact_at)
    with _watch(member, prefix, compact_at) as watch:
        got, _ = _read_events(watch, 3)
        assert got == revs[2:]
        _assert_level(member, watch, prefix)


def test_a_watch_below_the_compaction_revision_is_cancelled(member: LocalCluster) -> None:
    prefix = b"below-compact/"
    revs = _puts(member, prefix, 5)
    with SyncClient(member.endpoints, timeout=10) as client:
        client.compact(revs[3])
    with _watch(member, prefix, revs[3] - 1) as watch:
        resp = next(watch)
        assert resp.canceled and resp.compact_revision == revs[3]
        assert not resp.events


def test_a_backlog_comes_packed_up_to_1000_revisions_a_response(member: LocalCluster) -> None:
    prefix = b"backlog/"
    revs = _puts(member, prefix, 1200)
    with _watch(member, prefix, revs[0]) as watch:
        got, responses = _read_events(watch, 1200)
        assert got == revs
        assert [len(r.events) for r in responses] == [1000, 200]
        assert responses[-1].header.revision >= revs[-1]
        _assert_level(member, watch, prefix)
