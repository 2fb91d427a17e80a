"""Pure parts of the server: key ranges, the watch hub's filtering and replay, lease
deadlines, and the mapping of store errors to etcd's codes and messages."""

from __future__ import annotations

import asyncio
import errno
import time
from pathlib import Path

import grpc
import pytest

import kvstore.client
from kvstore.api.gen.etcdserverpb import rpc_pb2
from kvstore.api.gen.kvstorepb import internal_pb2
from kvstore.api.gen.mvccpb import kv_pb2
from kvstore.client._async import _retryable
from kvstore.raft.types import ConfState, Entry, Snapshot
from kvstore.server import errors
from kvstore.server.keyrange import in_range, prefix_end
from kvstore.server.lessor import LeaseClock
from kvstore.server.node import ReadContexts
from kvstore.server.snapshots import SnapshotWriter
from kvstore.server.statemachine import StateMachine, etcd_error
from kvstore.server.watch import (
    CATCH_UP_MAX_BYTES,
    CATCH_UP_MAX_REVISIONS,
    FILTER_NOPUT,
    CompactedWatch,
    Watcher,
    WatchHub,
)
from kvstore.storage.disk_storage import DiskStorage
from kvstore.storage.errors import CompactedError, InvalidRequestError, LeaseNotFoundError


def test_key_ranges() -> None:
    assert in_range(b"a", b"a", b"")
    assert not in_range(b"ab", b"a", b"")
    assert in_range(b"zzz", b"a", b"\0")
    assert in_range(b"ab", b"a", prefix_end(b"a"))
    assert not in_range(b"b", b"a", prefix_end(b"a"))
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b"\0"


def _event(kind: int, key: bytes, rev: int) -> kv_pb2.Event:
    ev = kv_pb2.Event(type=kv_pb2.Event.EventType.ValueType(kind))
    ev.kv.key = key
    ev.kv.mod_revision = rev
    ev.prev_kv.key = key
    return ev


def test_watch_hub_replays_then_streams_without_gaps_or_duplicates() -> None:
    history = [_event(0, b"k1", 2), _event(0, b"other", 3), _event(1, b"k1", 4)]
    got: list[tuple[int, list[bytes], bool]] = []
    second: list[tuple[int, list[bytes], bool]] = []

    def deliver(w: Watcher, evs: list[kv_pb2.Event], rev: int) -> None:
        out = got if w.watch_id == 1 else second
        out.append((rev, [e.kv.key for e in evs], any(e.HasField("prev_kv") for e in evs)))

    hub = WatchHub(lambda start, key, end: [e for e in history if e.kv.mod_revision >= start])
    w = Watcher(1, b"k", prefix_end(b"k"), prev_kv=False, filters=frozenset(),
                progress_notify=False, deliver=deliver)  # fmt: skip
    hub.add(w, start_revision=2, current=4, compacted=0)
    hub.publish(4, [_event(0, b"k2", 4)])  # already replayed revision: not sent again
    hub.publish(5, [_event(0, b"k2", 5)])
    # The replayed history comes in one response (revisions 2 and 4), then the live feed.
    assert got == [(4, [b"k1", b"k1"], False), (5, [b"k2"], False)]
    noput = Watcher(2, b"k1", b"", prev_kv=True, filters=frozenset({FILTER_NOPUT}),
                    progress_notify=False, deliver=deliver)  # fmt: skip
    hub.add(noput, 0, current=5, compacted=0)
    hub.publish(6, [_event(0, b"k1", 6)])
    hub.publish(7, [_event(1, b"k1", 7)])
    assert second == [(7, [b"k1"], True)]  # puts filtered out, prev_kv kept
    assert got[-2:] == [(6, [b"k1"], False), (7, [b"k1"], False)]
    hub.remove(w)
    hub.publish(8, [_event(0, b"k1", 8)])
    assert got[-1][0] == 7
    with pytest.raises(CompactedWatch) as info:
        hub.add(Watcher(3, b"k", b"", False, frozenset(), False, deliver), 3, 7, compacted=5)
    assert info.value.revision == 5


def test_a_watch_from_a_future_revision_gets_nothing_before_it() -> None:
    """A client resuming its watch on a member that lags (restarted, still applying) asks
    for a revision the member has not reached: events below it were delivered already and
    must not come again, as the member applies them."""
    got: list[int] = []

    def deliver(_w: Watcher, _evs: list[kv_pb2.Event], rev: int) -> None:
        got.append(rev)

    hub = WatchHub(lambda start, key, end: [])
    w = Watcher(1, b"k", b"", prev_kv=False, filters=frozenset(), progress_notify=False,
                deliver=deliver)  # fmt: skip
    hub.add(w, start_revision=10, current=5, compacted=0)
    for rev in range(6, 12):
        hub.publish(rev, [_event(0, b"k", rev)])
    assert got == [10, 11]


def test_lease_clock_only_the_leader_expires_and_a_new_leader_extends() -> None:
    now = [100.0]
    clock = LeaseClock(lambda: now[0], min_ttl=2)
    assert clock.effective_ttl(1) == 2
    clock.granted(7, 10)
    now[0] += 100
    assert clock.expired() == []  # a follower keeps no deadlines
    clock.promote([(7, 10)], extend=1.0)
    now[0] += 10.5
    assert clock.expired() == []  # TTL plus the election allowance
    assert clock.remaining(7, 10) == 0  # 0.5 s left: whole seconds, rounded down as etcd
    clock.renew(7, 10)
    now[0] += 0.001
    assert clock.remaining(7, 10) == 9  # just renewed: etcd reports a second less already
    now[0] += 8.999
    assert clock.expired() == []
    now[0] += 2
    assert clock.expired() == [7]
    clock.revoked(7)
    assert clock.expired() == []
    clock.demote()
    assert clock.remaining(7, 10) == 10


def test_store_errors_map_to_etcd_errors() -> None:
    assert etcd_error(CompactedError(3, 5)) == errors.COMPACTED
    assert etcd_error(LeaseNotFoundError(9)) == errors.LEASE_NOT_FOUND
    assert etcd_error(InvalidRequestError("key is not provided")) == errors.EMPTY_KEY
    other = etcd_error(InvalidRequestError("something odd"))
    assert other.code == grpc.StatusCode.INVALID_ARGUMENT
    assert other.message == "etcdserver: something odd"


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details, None)


@pytest.mark.parametrize(
    ("code", "details", "read", "write"),
    [
        (grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses", True, True),
        (grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader", True, True),
        (grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: not leader", True, True),
        (grpc.StatusCode.UNAVAILABLE, "etcdserver: leader changed", True, True),
        (grpc.StatusCode.UNAVAILABLE, "Socket closed", True, False),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", True, False),
        (grpc.StatusCode.UNAVAILABLE, "etcdserver: request timed out", True, False),
        (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: key is not provided", False, False),
    ],
)
def test_client_resends_writes_only_when_they_surely_were_not_applied(
    code: grpc.StatusCode, details: str, read: bool, write: bool
) -> None:
    error = _rpc_error(code, details)
    assert _retryable(error, write=False) is read
    assert _retryable(error, write=True) is write


def test_client_public_surface() -> None:
    assert sorted(kvstore.client.__all__) == [
        "Client", "ClientError", "NoEndpointAvailable", "SyncClient", "prefix_end",
    ]  # fmt: skip
    for name in kvstore.client.__all__:
        assert getattr(kvstore.client, name).__module__.startswith("kvstore.client")
    assert issubclass(kvstore.client.NoEndpointAvailable, kvstore.client.ClientError)
    assert kvstore.client.prefix_end(b"a/") == b"a0"


def test_read_contexts_never_collide_across_members_or_restarts() -> None:
    """The leader drops a ReadIndex request whose context it already holds, so a
    collision costs the readers behind it a whole retry interval."""
    first, second = ReadContexts(0x1A), ReadContexts(0x2B)
    a = [first.next() for _ in range(1000)]
    b = [second.next() for _ in range(1000)]
    restarted = ReadContexts(0x1A)
    c = [restarted.next() for _ in range(1000)]
    assert len(set(a) | set(b) | set(c)) == 3000


def test_a_watcher_without_room_catches_up_from_history_missing_nothing() -> None:
    """A slow stream's watcher leaves the live feed, then gets every revision once, in
    order, from history as room allows, and rejoins the live feed level with the store."""
    history: list[kv_pb2.Event] = []
    got: list[int] = []
    responses: list[list[int]] = []
    room = [True]

    def deliver(w: Watcher, evs: list[kv_pb2.Event], rev: int) -> None:
        responses.append([ev.kv.mod_revision for ev in evs])
        got.extend(responses[-1])
        if len(responses) % 3 == 0:
            room[0] = False  # the stream fills up every third response

    def publish(rev: int, key: bytes = b"k") -> None:
        ev = _event(0, key, rev)
        history.append(ev)
        hub.publish(rev, [ev])

    hub = WatchHub(lambda start, key, end: [e for e in history if e.kv.mod_revision >= start])
    w = Watcher(1, b"k", b"", prev_kv=False, filters=frozenset(), progress_notify=False,
                deliver=deliver, has_room=lambda: room[0])  # fmt: skip
    hub.add(w, 0, current=1, compacted=0)
    for rev in range(2, 12):
        publish(rev, b"k" if rev != 5 else b"other")
    assert got == [2, 3, 4] and hub.lagging == 1
    while hub.lagging:
        room[0] = True
        hub.catch_up([w], current=11, compacted=0)
    assert got == [2, 3, 4, 6, 7, 8, 9, 10, 11]  # revision 5 is another key
    assert responses[3:] == [[6, 7, 8, 9, 10, 11]]  # the backlog in one response
    room[0] = True
    publish(12)
    assert got[-1] == 12 and hub.lagging == 0  # back on the live feed


def test_catch_up_packs_at_most_1000_revisions_or_a_megabyte_a_response() -> None:
    """etcd packs a watch's backlog into responses of up to 1,000 revisions; a response
    closes earlier once its events pass a megabyte, and never splits a revision."""
    history = [_event(0, b"k", rev) for rev in range(1, 2501)]
    history.insert(10, _event(0, b"k2", 10))  # a revision of two events
    responses: list[list[int]] = []

    def deliver(w: Watcher, evs: list[kv_pb2.Event], rev: int) -> None:
        assert rev == evs[-1].kv.mod_revision
        responses.append([ev.kv.mod_revision for ev in evs])

    hub = WatchHub(lambda start, key, end: [e for e in history if e.kv.mod_revision >= start])
    hub.add(Watcher(1, b"k", b"l", False, frozenset(), False, deliver), 1, 2500, compacted=0)
    assert [len(set(r)) for r in responses] == [CATCH_UP_MAX_REVISIONS, 1000, 500]
    assert [rev for r in responses for rev in r] == [e.kv.mod_revision for e in history]

    big = []
    for rev in range(1, 6):
        ev = _event(0, b"big", rev)
        ev.kv.value = b"x" * (CATCH_UP_MAX_BYTES // 2)
        big.append(ev)
    responses.clear()
    hub = WatchHub(lambda start, key, end: [e for e in big if e.kv.mod_revision >= start])
    hub.add(Watcher(2, b"big", b"", False, frozenset(), False, deliver), 1, 5, compacted=0)
    assert responses == [[1, 2], [3, 4], [5]]


def test_a_lagging_watcher_whose_history_was_compacted_is_cancelled() -> None:
    cancelled: list[int] = []
    room = [True]

    def deliver(w: Watcher, evs: list[kv_pb2.Event], rev: int) -> None:
        if rev < 0:
            cancelled.append(-rev)
        room[0] = False

    hub = WatchHub(lambda start, key, end: [])
    w = Watcher(1, b"k", b"", False, frozenset(), False, deliver, has_room=lambda: room[0])
    hub.add(w, 0, current=1, compacted=0)
    hub.publish(2, [_event(0, b"k", 2)])
    hub.publish(3, [_event(0, b"k", 3)])  # no room: lagging from revision 3
    room[0] = True
    hub.catch_up([w], current=4, compacted=4)
    assert cancelled == [4] and w.cancelled and hub.lagging == 0 and len(hub) == 0


def test_a_watch_at_the_compaction_revision_is_served() -> None:
    """etcd cancels a watch only below the compaction revision: resuming from the
    ``compact_revision`` of a cancelled watch must work, for a new or a lagging one."""
    history = [_event(0, b"k", rev) for rev in range(1, 8)]
    got: list[int] = []
    room = [True]

    def deliver(w: Watcher, evs: list[kv_pb2.Event], rev: int) -> None:
        assert rev > 0, "cancelled"
        got.extend(e.kv.mod_revision for e in evs)
        room[0] = False

    hub = WatchHub(lambda start, key, end: [e for e in history if e.kv.mod_revision >= start])
    at = Watcher(1, b"k", b"", False, frozenset(), False, deliver)
    hub.add(at, 5, 7, compacted=5)
    assert got == [5, 6, 7]
    hub.remove(at)
    got.clear()
    room[0] = True
    w = Watcher(2, b"k", b"", False, frozenset(), False, deliver, has_room=lambda: room[0])
    hub.add(w, 0, current=7, compacted=5)
    hub.publish(8, [_event(0, b"k", 8)])
    history.append(_event(0, b"k", 9))
    hub.publish(9, history[-1:])  # no room: lagging from revision 9
    room[0] = True
    hub.catch_up([w], current=9, compacted=9)
    assert got == [8, 9] and not w.cancelled and hub.lagging == 0


def _state_with_keys(n: int) -> StateMachine:
    sm = StateMachine(1, 2, lambda: 1, LeaseClock(time.monotonic, 2))
    for i in range(n):
        put = rpc_pb2.PutRequest(key=f"k{i:05}".encode(), value=b"v")
        sm.apply(internal_pb2.InternalRequest(put=put), i + 1, 1)
    return sm


def test_the_snapshot_writer_writes_the_state_as_of_its_start(tmp_path: Path) -> None:
    """Applies made while it encodes are not in it; the file is the one recovery loads."""
    sm = _state_with_keys(5000)
    storage = DiskStorage.open(tmp_path)
    storage.save(None, [Entry(1, i) for i in range(1, 5001)], must_sync=True)
    expected = sm.snapshot()
    written: list[bool] = []

    async def run() -> Snapshot | None:
        writer = SnapshotWriter(storage, lambda: written.append(True), lambda: None)
        writer.start(sm.snapshot_encoder(), 5000, 1, ConfState(voters=frozenset({1})))
        assert writer.busy
        put = rpc_pb2.PutRequest(key=b"later", value=b"v")
        sm.apply(internal_pb2.InternalRequest(put=put), 5001, 1)  # while it encodes
        while not written:
            await asyncio.sleep(0.01)
        return writer.take()

    snap = asyncio.run(run())
    assert snap is not None and snap.data == expected and snap.metadata.index == 5000
    storage.commit_snapshot(snap)
    storage.close()
    assert DiskStorage.open(tmp_path).snapshot().data == expected


def test_a_failed_snapshot_write_stops_the_member(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = DiskStorage.open(tmp_path)
    storage.save(None, [Entry(1, 1)], must_sync=True)

    def full_disk(*_args: object) -> Snapshot:
        # Stands in for a disk that fills up under the file (the fault tests fill a real
        # one); what matters here is that the failure reaches the member.
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage, "write_snapshot", full_disk)
    failed: list[bool] = []

    async def run() -> SnapshotWriter:
        writer = SnapshotWriter(storage, lambda: None, lambda: failed.append(True))
        encoder = _state_with_keys(10).snapshot_encoder()
        writer.start(encoder, 1, 1, ConfState(voters=frozenset({1})))
        while not failed:
            await asyncio.sleep(0.01)
        return writer

    writer = asyncio.run(run())
    assert failed == [True] and not writer.busy and writer.take() is None
