"""Bad input and limits: each answered with the gRPC status and message etcd uses, and none
of them changes state or hurts a member (the members' hashes agree afterwards)."""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from kvstore.api.gen.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvstore.api.gen.kvstorepb import internal_pb2, internal_pb2_grpc
from kvstore.api.gen.mvccpb import kv_pb2
from kvstore.client import ClientError, SyncClient
from kvstore.raft.codec import encode_message
from kvstore.raft.types import Message, MessageType
from kvstore.server import errors
from kvstore.server.metrics import new_metrics
from kvstore.server.services import Observer
from kvstore.verify.cluster import RAFT_FLAGS, LocalCluster
from tests.kvstore.server.conftest import running

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(shared_cluster: LocalCluster) -> LocalCluster:
    """This module's tests never kill a member: they share the session's cluster."""
    return shared_cluster


def _error(call: object) -> ClientError:
    assert callable(call)
    with pytest.raises(ClientError) as info:
        call()
    return info.value


@pytest.fixture(scope="module")
def client(cluster: LocalCluster) -> Iterator[SyncClient]:
    with cluster.client() as c:
        yield c


def test_empty_key_is_refused(client: SyncClient) -> None:
    for call in (
        lambda: client.put(b"", b"v"),
        lambda: client.get(b""),
        lambda: client.delete(b""),
    ):
        err = _error(call)
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT
        assert err.details == "etcdserver: key is not provided"


def test_request_size_limit(client: SyncClient) -> None:
    # Over --max-request-bytes (1.5 MiB) but within gRPC's allowance: etcd's own error.
    err = _error(lambda: client.put(b"big", b"x" * (1536 * 1024 + 10)))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details == "etcdserver: request is too large"
    # Far beyond: refused by gRPC before it reaches the server's code.
    err = _error(lambda: client.put(b"huge", b"x" * (3 * 1024 * 1024)))
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert client.get(b"big").count == 0
    assert client.get(b"huge").count == 0
    # Just under the limit is fine.
    client.put(b"big", b"x" * (1400 * 1024))
    assert client.get(b"big").kvs[0].value == b"x" * (1400 * 1024)
    client.delete(b"big")


def _txn(n: int, prefix: str = "op") -> rpc_pb2.TxnRequest:
    return rpc_pb2.TxnRequest(
        success=[
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=f"{prefix}/{i}".encode()))
            for i in range(n)
        ]
    )


def test_txn_operation_limit_and_duplicate_keys(client: SyncClient) -> None:
    err = _error(lambda: client.txn(_txn(129)))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details == "etcdserver: too many operations in txn request"
    assert client.get(b"op/0").count == 0
    assert client.txn(_txn(128)).succeeded
    assert client.get(b"op/", prefix=True, count_only=True).count == 128
    dup = rpc_pb2.TxnRequest(
        success=[
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"dup", value=b"1")),
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"dup", value=b"2")),
        ]
    )
    err = _error(lambda: client.txn(dup))
    assert err.details == "etcdserver: duplicate key given in txn request"
    assert client.get(b"dup").count == 0


def test_put_options_and_unknown_lease(client: SyncClient) -> None:
    err = _error(lambda: client.put(b"no-lease", b"v", lease=0x1234))
    assert err.code == grpc.StatusCode.NOT_FOUND
    assert err.details == "etcdserver: requested lease not found"
    assert client.get(b"no-lease").count == 0
    bad = rpc_pb2.PutRequest(key=b"k", value=b"v", ignore_value=True)
    with grpc.insecure_channel(client.aio.endpoint) as channel:
        stub = rpc_pb2_grpc.KVStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Put(bad, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details() == "etcdserver: value is provided"
        with pytest.raises(grpc.RpcError) as info:
            stub.Put(rpc_pb2.PutRequest(key=b"absent", ignore_value=True), timeout=10)
        assert info.value.details() == "etcdserver: key not found"


def test_revisions_out_of_range(client: SyncClient) -> None:
    current = client.put(b"rev", b"1").header.revision
    err = _error(lambda: client.get(b"rev", revision=current + 1000))
    assert err.code == grpc.StatusCode.OUT_OF_RANGE
    assert err.details == "etcdserver: mvcc: required revision is a future revision"
    client.put(b"rev", b"2")
    client.compact(current + 1)
    err = _error(lambda: client.get(b"rev", revision=current))
    assert err.code == grpc.StatusCode.OUT_OF_RANGE
    assert err.details == "etcdserver: mvcc: required revision has been compacted"
    err = _error(lambda: client.compact(current))
    assert err.details == "etcdserver: mvcc: required revision has been compacted"


def test_watch_from_compacted_revision_is_cancelled(client: SyncClient) -> None:
    first = client.put(b"w-compact", b"1").header.revision
    client.put(b"w-compact", b"2")
    compacted = client.put(b"w-compact", b"3").header.revision
    client.compact(compacted)
    with grpc.insecure_channel(client.aio.endpoint) as channel:
        stream = rpc_pb2_grpc.WatchStub(channel).Watch(
            iter(
                [
                    rpc_pb2.WatchRequest(
                        create_request=rpc_pb2.WatchCreateRequest(
                            key=b"w-compact", start_revision=first
                        )
                    )
                ]
            ),
            timeout=10,
        )
        responses = iter(stream)
        created = next(responses)
        assert created.created
        cancelled = next(responses)
    assert cancelled.canceled
    assert cancelled.compact_revision == compacted
    assert "compacted" in cancelled.cancel_reason


def test_unknown_member_id(client: SyncClient) -> None:
    for call in (
        lambda: client.member_remove(0xDEADBEEF),
        lambda: client.member_promote(0xDEADBEEF),
    ):
        err = _error(call)
        assert err.code == grpc.StatusCode.NOT_FOUND
        assert err.details == "etcdserver: member not found"
    err = _error(lambda: client.move_leader(0xDEADBEEF))
    assert err.details == "etcdserver: bad leader transferee"
    assert len(client.member_list().members) == 3


def test_bad_member_urls(client: SyncClient) -> None:
    err = _error(lambda: client.member_add(["not a url"]))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details == "etcdserver: given member URLs are invalid"
    existing = client.member_list().members[0].peerURLs[0]
    err = _error(lambda: client.member_add([existing]))
    assert err.details == "etcdserver: Peer URLs already exists"


def test_malformed_bytes_and_auth(client: SyncClient) -> None:
    with grpc.insecure_channel(client.aio.endpoint) as channel:
        raw = channel.unary_unary(
            "/etcdserverpb.KV/Put", request_serializer=None, response_deserializer=None
        )
        with pytest.raises(grpc.RpcError) as info:
            raw(b"\xff\xff\xff\xff not a protobuf", timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "malformed request" in (info.value.details() or "")
        auth = channel.unary_unary(
            "/etcdserverpb.Auth/AuthEnable",
            request_serializer=rpc_pb2.AuthEnableRequest.SerializeToString,
            response_deserializer=rpc_pb2.AuthEnableResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as info:
            auth(rpc_pb2.AuthEnableRequest(), timeout=10)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert info.value.details() == "etcdserver: root user does not exist"
    client.put(b"after-garbage", b"ok")
    assert client.get(b"after-garbage").kvs[0].value == b"ok"


def test_members_still_agree_after_bad_input(cluster: LocalCluster, client: SyncClient) -> None:
    revision = client.put(b"hash-marker", b"1").header.revision
    hashes = set()
    for m in cluster.members:
        with grpc.insecure_channel(m.endpoint) as channel:
            stub = rpc_pb2_grpc.MaintenanceStub(channel)
            deadline = time.monotonic() + 10
            while True:
                try:
                    resp = stub.HashKV(rpc_pb2.HashKVRequest(revision=revision), timeout=5)
                    break
                except grpc.RpcError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            hashes.add(resp.hash)
    assert len(hashes) == 1


def test_nospace_alarm(tmp_path: Path) -> None:
    small = LocalCluster(tmp_path, 1, extra=[*RAFT_FLAGS, "--quota-backend-bytes", "60000"])
    with running(small), small.client() as c:
        with pytest.raises(ClientError) as info:
            for i in range(200):
                c.put(f"fill/{i}".encode(), b"x" * 1000)
        assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert info.value.details == "etcdserver: mvcc: database space exceeded"
        deadline = time.monotonic() + 5
        while not c.alarms().alarms and time.monotonic() < deadline:
            time.sleep(0.05)
        alarms = c.alarms().alarms
        assert [a.alarm for a in alarms] == [rpc_pb2.AlarmType.Value("NOSPACE")]
        # Reads and deletes still work; writes do not.
        assert c.get(b"fill/0").kvs[0].value == b"x" * 1000
        assert _error(lambda: c.put(b"tiny", b"1")).details == (
            "etcdserver: mvcc: database space exceeded"
        )
        latest = c.delete(b"fill/", prefix=True).header.revision
        c.compact(latest)
        c.disarm()
        assert not c.alarms().alarms
        c.put(b"tiny", b"1")
        assert c.get(b"tiny").kvs[0].value == b"1"


def test_raft_traffic_from_another_cluster_is_refused(cluster: LocalCluster) -> None:
    target = cluster.members[0]
    heartbeat = encode_message(Message(MessageType.HEARTBEAT, to=1, from_=2, term=10**6))
    with grpc.insecure_channel(f"{target.host}:{target.peer_port}") as channel:
        stub = internal_pb2_grpc.PeerStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Step(
                internal_pb2.StepRequest(messages=[heartbeat]),
                metadata=(("kvstore-cluster-id", "123abc"),),
                timeout=5,
            )
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "cluster ID mismatch" in (info.value.details() or "")
        with pytest.raises(grpc.RpcError) as info:
            stub.Step(internal_pb2.StepRequest(messages=[b"\x01garbage"]), timeout=5)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The term of the refused message never reached Raft.
    with SyncClient([target.endpoint], timeout=5) as c:
        assert c.status().raftTerm < 10**6


def test_watch_filters_prev_kv_progress_and_cancel(client: SyncClient) -> None:
    client.put(b"wf/key", b"old")
    requests: list[rpc_pb2.WatchRequest] = [
        rpc_pb2.WatchRequest(
            create_request=rpc_pb2.WatchCreateRequest(
                key=b"wf/",
                range_end=b"wf0",
                prev_kv=True,
                filters=[rpc_pb2.WatchCreateRequest.NOPUT],
                watch_id=7,
            )
        )
    ]
    outgoing: queue.Queue[rpc_pb2.WatchRequest | None] = queue.Queue()
    for r in requests:
        outgoing.put(r)

    def feed() -> Iterator[rpc_pb2.WatchRequest]:
        while (item := outgoing.get()) is not None:
            yield item

    with grpc.insecure_channel(client.aio.endpoint) as channel:
        responses = iter(rpc_pb2_grpc.WatchStub(channel).Watch(feed(), timeout=20))
        created = next(responses)
        assert created.created and created.watch_id == 7
        done = threading.Event()

        def write() -> None:
            client.put(b"wf/key", b"new")  # filtered out (NOPUT)
            client.delete(b"wf/key")
            done.set()

        threading.Thread(target=write).start()
        deleted = next(responses)
        assert [e.type for e in deleted.events] == [kv_pb2.Event.DELETE]
        assert deleted.events[0].prev_kv.value == b"new"
        done.wait(10)
        outgoing.put(rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()))
        progress = next(responses)
        assert not progress.events
        assert progress.header.revision == deleted.header.revision
        outgoing.put(rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=7)))
        cancelled = next(responses)
        assert cancelled.canceled and cancelled.watch_id == 7
        outgoing.put(None)


def test_a_follower_refuses_forwarded_work_with_a_leader_hint(cluster: LocalCluster) -> None:
    leader = cluster.leader()
    follower = next(m for m in cluster.members if m is not leader)
    request = internal_pb2.ForwardRequest(
        proposal=internal_pb2.InternalRequest(put=rpc_pb2.PutRequest(key=b"k", value=b"v"))
    )
    channel = grpc.insecure_channel(f"{follower.host}:{follower.peer_port}")
    with channel, pytest.raises(grpc.RpcError) as info:
        internal_pb2_grpc.PeerStub(channel).Forward(request, timeout=5)
    error = info.value
    assert isinstance(error, grpc.Call)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == "etcdserver: not leader"
    trailers = dict(error.trailing_metadata() or ())
    assert trailers["kvstore-leader"] == f"{cluster.member_id(leader):x}"


def test_a_burst_of_2000_concurrent_puts_on_one_connection_is_served(
    cluster: LocalCluster,
) -> None:
    """gRPC's server cancels calls past 1,000 waiting for a handler with a bare CANCELLED;
    the member queues them, as etcd does, and every put succeeds."""

    async def burst() -> collections.Counter[str]:
        codes: collections.Counter[str] = collections.Counter()
        async with grpc.aio.insecure_channel(cluster.members[0].endpoint) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)

            async def put(i: int) -> None:
                try:
                    await kv.Put(rpc_pb2.PutRequest(key=b"burst/%d" % i, value=b"v"), timeout=60)
                    codes["OK"] += 1
                except grpc.aio.AioRpcError as exc:
                    codes[f"{exc.code().name}: {exc.details()}"] += 1

            await asyncio.gather(*(put(i) for i in range(2000)))
        return codes

    assert asyncio.run(burst()) == {"OK": 2000}


def test_calls_past_the_in_flight_limit_get_too_many_requests() -> None:
    observer = Observer(new_metrics(), max_in_flight=2)
    release = asyncio.Event()

    class Context:
        invocation_metadata = staticmethod(lambda: ())

        async def abort(self, code: grpc.StatusCode, message: str) -> None:
            raise errors.EtcdError(code, message)

    async def held() -> str:
        await release.wait()
        return "done"

    async def run() -> list[str | BaseException]:
        ctx: Any = Context()
        calls = [asyncio.ensure_future(observer.unary("s", "m", ctx, held)) for _ in range(3)]
        await asyncio.sleep(0.01)
        release.set()
        results = await asyncio.gather(*calls, return_exceptions=True)
        # The slots are free again: the next call runs.
        results.append(await observer.unary("s", "m", ctx, held))
        return results

    first, second, refused, after = asyncio.run(run())
    assert (first, second, after) == ("done", "done", "done")
    assert refused == errors.TOO_MANY_REQUESTS
    assert isinstance(refused, errors.EtcdError)
    assert refused.code == grpc.StatusCode.RESOURCE_EXHAUSTED
