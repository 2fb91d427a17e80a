"""The etcd v3 gRPC services: thin shells that observe each call (metrics, a server span)
and turn :class:`~kvstore.server.errors.EtcdError` into the gRPC status etcd would send.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

import grpc
from google.protobuf.message import DecodeError
from opentelemetry.trace import SpanKind

from kvstore.api.gen.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvstore.api.gen.mvccpb import kv_pb2
from kvstore.server import errors, tracing
from kvstore.server.etcd import EtcdServer
from kvstore.server.metrics import Metrics
from kvstore.server.watch import CompactedWatch, Watcher

log = logging.getLogger(__name__)

T = TypeVar("T")

SNAPSHOT_CHUNK_BYTES = 32 * 1024
LEADER_HINT_KEY = "kvstore-leader"
"""Trailing metadata on UNAVAILABLE/FAILED_PRECONDITION errors: the leader's id (hex)."""
PROGRESS_INTERVAL_S = 5.0
"""How often a watcher with ``progress_notify`` hears the current revision when idle."""


Ctx: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


def code_name(code: grpc.StatusCode) -> str:
    """A status code as grpc-go spells it in metrics (``InvalidArgument``)."""
    if code == grpc.StatusCode.OK:
        return "OK"
    return "".join(part.capitalize() for part in code.name.split("_"))


class Observer:
    """Wraps handlers with metrics, a server span and error translation."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def started(self, grpc_type: str, service: str, method: str) -> None:
        """Count a call that does not go through :meth:`unary` (server streams)."""
        self._metrics.grpc_started.labels(grpc_type, service, method).inc()

    def handled(self, grpc_type: str, service: str, method: str, code: grpc.StatusCode) -> None:
        """Count the end of such a call."""
        self._metrics.grpc_handled.labels(grpc_type, service, method, code_name(code)).inc()

    async def unary(
        self,
        service: str,
        method: str,
        context: Ctx,
        call: Callable[[], Awaitable[T]],
        grpc_type: str = "unary",
    ) -> T:
        """Run ``call`` as the handler of ``service/method``."""
        m = self._metrics
        m.grpc_started.labels(grpc_type, service, method).inc()
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        parent = tracing.context_from_metadata(context.invocation_metadata())
        try:
            with tracing.tracer().start_as_current_span(
                f"{service}/{method}", context=parent, kind=SpanKind.SERVER
            ):
                try:
                    return await call()
                except errors.EtcdError as exc:
                    code = exc.code
                    if exc.leader_hint:
                        context.set_trailing_metadata(((LEADER_HINT_KEY, f"{exc.leader_hint:x}"),))
                    await context.abort(exc.code, exc.message)
                    raise  # abort raises; this keeps type checkers informed
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        finally:
            m.grpc_handled.labels(grpc_type, service, method, code_name(code)).inc()
            m.grpc_handling.labels(grpc_type, service, method).observe(
                time.perf_counter() - started
            )


_KV = "etcdserverpb.KV"
_LEASE = "etcdserverpb.Lease"
_CLUSTER = "etcdserverpb.Cluster"
_MAINT = "etcdserverpb.Maintenance"
_WATCH = "etcdserverpb.Watch"


class KVService(rpc_pb2_grpc.KVServicer):
    """etcdserverpb.KV."""

    def __init__(self, server: EtcdServer, observer: Observer) -> None:
        self._s = server
        self._o = observer

    async def Range(self, request: rpc_pb2.RangeRequest, context: Ctx) -> rpc_pb2.RangeResponse:
        """See :meth:`EtcdServer.range`."""
        return await self._o.unary(_KV, "Range", context, lambda: self._s.range(request))

    async def Put(self, request: rpc_pb2.PutRequest, context: Ctx) -> rpc_pb2.PutResponse:
        """See :meth:`EtcdServer.put`."""
        return await self._o.unary(_KV, "Put", context, lambda: self._s.put(request))

    async def DeleteRange(
        self, request: rpc_pb2.DeleteRangeRequest, context: Ctx
    ) -> rpc_pb2.DeleteRangeResponse:
        """See :meth:`EtcdServer.delete_range`."""
        return await self._o.unary(
            _KV, "DeleteRange", context, lambda: self._s.delete_range(request)
        )

    async def Txn(self, request: rpc_pb2.TxnRequest, context: Ctx) -> rpc_pb2.TxnResponse:
        """See :meth:`EtcdServer.txn`."""
        return await self._o.unary(_KV, "Txn", context, lambda: self._s.txn(request))

    async def Compact(
        self, request: rpc_pb2.CompactionRequest, context: Ctx
    ) -> rpc_pb2.CompactionResponse:
        """See :meth:`EtcdServer.compact`."""
        return await self._o.unary(_KV, "Compact", context, lambda: self._s.compact(request))


class LeaseService(rpc_pb2_grpc.LeaseServicer):
    """etcdserverpb.Lease."""

    def __init__(self, server: EtcdServer, observer: Observer) -> None:
        self._s = server
        self._o = observer

    async def LeaseGrant(
        self, request: rpc_pb2.LeaseGrantRequest, context: Ctx
    ) -> rpc_pb2.LeaseGrantResponse:
        """See :meth:`EtcdServer.lease_grant`."""
        return await self._o.unary(
            _LEASE, "LeaseGrant", context, lambda: self._s.lease_grant(request)
        )

    async def LeaseRevoke(
        self, request: rpc_pb2.LeaseRevokeRequest, context: Ctx
    ) -> rpc_pb2.LeaseRevokeResponse:
        """See :meth:`EtcdServer.lease_revoke`."""
        return await self._o.unary(
            _LEASE, "LeaseRevoke", context, lambda: self._s.lease_revoke(request)
        )

    async def LeaseKeepAlive(
        self, request_iterator: AsyncIterator[rpc_pb2.LeaseKeepAliveRequest], context: Ctx
    ) -> AsyncIterator[rpc_pb2.LeaseKeepAliveResponse]:
        """One answer per keep-alive; a lease that is gone answers TTL 0."""
        async for request in request_iterator:
            yield await self._o.unary(
                _LEASE,
                "LeaseKeepAlive",
                context,
                lambda request=request: self._s.lease_keep_alive(request.ID),  # type: ignore[misc]
                grpc_type="bidi_stream",
            )

    async def LeaseTimeToLive(
        self, request: rpc_pb2.LeaseTimeToLiveRequest, context: Ctx
    ) -> rpc_pb2.LeaseTimeToLiveResponse:
        """See :meth:`EtcdServer.lease_time_to_live`."""
        return await self._o.unary(
            _LEASE, "LeaseTimeToLive", context, lambda: self._s.lease_time_to_live(request)
        )

    async def LeaseLeases(
        self, request: rpc_pb2.LeaseLeasesRequest, context: Ctx
    ) -> rpc_pb2.LeaseLeasesResponse:
        """See :meth:`EtcdServer.lease_leases`."""
        return await self._o.unary(_LEASE, "LeaseLeases", context, self._s.lease_leases)


class ClusterService(rpc_pb2_grpc.ClusterServicer):
    """etcdserverpb.Cluster."""

    def __init__(self, server: EtcdServer, observer: Observer) -> None:
        self._s = server
        self._o = observer

    async def MemberAdd(
        self, request: rpc_pb2.MemberAddRequest, context: Ctx
    ) -> rpc_pb2.MemberAddResponse:
        """See :meth:`EtcdServer.member_add`."""
        return await self._o.unary(
            _CLUSTER, "MemberAdd", context, lambda: self._s.member_add(request)
        )

    async def MemberRemove(
        self, request: rpc_pb2.MemberRemoveRequest, context: Ctx
    ) -> rpc_pb2.MemberRemoveResponse:
        """See :meth:`EtcdServer.member_remove`."""
        return await self._o.unary(
            _CLUSTER, "MemberRemove", context, lambda: self._s.member_remove(request)
        )

    async def MemberUpdate(
        self, request: rpc_pb2.MemberUpdateRequest, context: Ctx
    ) -> rpc_pb2.MemberUpdateResponse:
        """See :meth:`EtcdServer.member_update`."""
        return await self._o.unary(
            _CLUSTER, "MemberUpdate", context, lambda: self._s.member_update(request)
        )

    async def MemberList(
        self, request: rpc_pb2.MemberListRequest, context: Ctx
    ) -> rpc_pb2.MemberListResponse:
        """See :meth:`EtcdServer.member_list`."""
        return await self._o.unary(
            _CLUSTER, "MemberList", context, lambda: self._s.member_list(request.linearizable)
        )

    async def MemberPromote(
        self, request: rpc_pb2.MemberPromoteRequest, context: Ctx
    ) -> rpc_pb2.MemberPromoteResponse:
        """See :meth:`EtcdServer.member_promote`."""
        return await self._o.unary(
            _CLUSTER, "MemberPromote", context, lambda: self._s.member_promote(request)
        )


async def _value(value: T) -> T:
    return value


class MaintenanceService(rpc_pb2_grpc.MaintenanceServicer):
    """etcdserverpb.Maintenance."""

    def __init__(self, server: EtcdServer, observer: Observer) -> None:
        self._s = server
        self._o = observer

    async def Alarm(self, request: rpc_pb2.AlarmRequest, context: Ctx) -> rpc_pb2.AlarmResponse:
        """See :meth:`EtcdServer.alarm`."""
        return await self._o.unary(_MAINT, "Alarm", context, lambda: self._s.alarm(request))

    async def Status(self, request: rpc_pb2.StatusRequest, context: Ctx) -> rpc_pb2.StatusResponse:
        """See :meth:`EtcdServer.status`."""
        return await self._o.unary(_MAINT, "Status", context, lambda: _value(self._s.status()))

    async def Defragment(
        self, request: rpc_pb2.DefragmentRequest, context: Ctx
    ) -> rpc_pb2.DefragmentResponse:
        """The store lives in memory and compaction frees space at once: nothing to do."""
        return await self._o.unary(
            _MAINT,
            "Defragment",
            context,
            lambda: _value(rpc_pb2.DefragmentResponse(header=self._s.header())),
        )

    async def Hash(self, request: rpc_pb2.HashRequest, context: Ctx) -> rpc_pb2.HashResponse:
        """The hash of the whole key space at the current revision."""

        async def run() -> rpc_pb2.HashResponse:
            resp = self._s.hash_kv(0)
            return rpc_pb2.HashResponse(header=resp.header, hash=resp.hash)

        return await self._o.unary(_MAINT, "Hash", context, run)

    async def HashKV(self, request: rpc_pb2.HashKVRequest, context: Ctx) -> rpc_pb2.HashKVResponse:
        """See :meth:`EtcdServer.hash_kv`."""
        return await self._o.unary(
            _MAINT, "HashKV", context, lambda: _value(self._s.hash_kv(request.revision))
        )

    async def Snapshot(
        self, request: rpc_pb2.SnapshotRequest, context: Ctx
    ) -> AsyncIterator[rpc_pb2.SnapshotResponse]:
        """Stream a consistent snapshot of the replicated state in chunks."""
        self._o.started("server_stream", _MAINT, "Snapshot")
        data = snapshot_file(self._s.sm.snapshot())
        header = self._s.header()
        sent = 0
        while True:
            chunk = data[sent : sent + SNAPSHOT_CHUNK_BYTES]
            sent += len(chunk)
            yield rpc_pb2.SnapshotResponse(
                header=header, remaining_bytes=len(data) - sent, blob=chunk, version="3.5.0"
            )
            if sent >= len(data):
                break
        self._o.handled("server_stream", _MAINT, "Snapshot", grpc.StatusCode.OK)

    async def MoveLeader(
        self, request: rpc_pb2.MoveLeaderRequest, context: Ctx
    ) -> rpc_pb2.MoveLeaderResponse:
        """See :meth:`EtcdServer.move_leader`."""
        return await self._o.unary(
            _MAINT, "MoveLeader", context, lambda: self._s.move_leader(request)
        )

    async def Downgrade(
        self, request: rpc_pb2.DowngradeRequest, context: Ctx
    ) -> rpc_pb2.DowngradeResponse:
        """A single-version store has nothing to downgrade to."""
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED, "kvstore: cluster version downgrade is not supported"
        )
        raise AssertionError("unreachable")


SNAPSHOT_FILE_MAGIC = b"KVSNAP01"


def snapshot_file(state: bytes) -> bytes:
    """The bytes of a saved snapshot: magic, length (u64 big-endian), the server state,
    zero padding to a multiple of 512 bytes, then the SHA-256 of everything before it.

    etcd clients check that a snapshot ends in a SHA-256 after a 512-byte aligned body
    (etcd's own files are aligned database pages), so the layout keeps that shape.
    """
    body = SNAPSHOT_FILE_MAGIC + len(state).to_bytes(8, "big") + state
    body += b"\0" * (-len(body) % 512)
    return body + hashlib.sha256(body).digest()


def read_snapshot_file(data: bytes) -> bytes:
    """The server state inside a saved snapshot; ValueError if damaged."""
    body, digest = data[:-32], data[-32:]
    if hashlib.sha256(body).digest() != digest or not body.startswith(SNAPSHOT_FILE_MAGIC):
        raise ValueError("not a kvstore snapshot, or damaged")
    size = int.from_bytes(body[8:16], "big")
    return body[16 : 16 + size]


class WatchService(rpc_pb2_grpc.WatchServicer):
    """etcdserverpb.Watch: many watchers multiplexed on one bidirectional stream."""

    def __init__(self, server: EtcdServer, observer: Observer) -> None:
        self._s = server
        self._o = observer

    async def Watch(
        self, request_iterator: AsyncIterator[rpc_pb2.WatchRequest], context: Ctx
    ) -> AsyncIterator[rpc_pb2.WatchResponse]:
        """Create, cancel and progress requests in; events and notifications out."""
        stream = _WatchStream(self._s)
        reader = asyncio.get_running_loop().create_task(stream.read(request_iterator))
        ticker = asyncio.get_running_loop().create_task(stream.progress_loop())
        try:
            while True:
                item = await stream.out.get()
                if item is None:
                    break
                yield item
        finally:
            for task in (reader, ticker):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            stream.close()


class _WatchStream:
    """The watchers of one stream and the queue of what to send."""

    def __init__(self, server: EtcdServer) -> None:
        self._s = server
        self.out: asyncio.Queue[rpc_pb2.WatchResponse | None] = asyncio.Queue()
        self._watchers: dict[int, Watcher] = {}
        self._next_id = 0

    def _deliver(self, watcher: Watcher, events: list[kv_pb2.Event], revision: int) -> None:
        if revision < 0:
            # The hub cancelled the watcher: its history was compacted away.
            self._watchers.pop(watcher.watch_id, None)
            self.out.put_nowait(
                rpc_pb2.WatchResponse(
                    header=self._s.header(),
                    watch_id=watcher.watch_id,
                    canceled=True,
                    compact_revision=-revision,
                    cancel_reason=errors.COMPACTED.message,
                )
            )
            return
        self.out.put_nowait(
            rpc_pb2.WatchResponse(header=self._s.header(), watch_id=watcher.watch_id, events=events)
        )

    def _allocate(self, wanted: int) -> int:
        if wanted:
            return wanted
        while self._next_id in self._watchers:
            self._next_id += 1
        wid = self._next_id
        self._next_id += 1
        return wid

    def create(self, req: rpc_pb2.WatchCreateRequest) -> None:
        """Register a watcher (replaying history from ``start_revision``)."""
        wid = self._allocate(req.watch_id)
        header = self._s.header()
        if wid in self._watchers or not req.key:
            self.out.put_nowait(
                rpc_pb2.WatchResponse(
                    header=header,
                    watch_id=wid if req.key else -1,
                    created=True,
                    canceled=True,
                    cancel_reason=(
                        "etcdserver: duplicate watch ID" if req.key else errors.EMPTY_KEY.message
                    ),
                )
            )
            return
        watcher = Watcher(
            watch_id=wid,
            key=req.key,
            range_end=req.range_end,
            prev_kv=req.prev_kv,
            filters=frozenset(int(f) for f in req.filters),
            progress_notify=req.progress_notify,
            deliver=self._deliver,
        )
        self.out.put_nowait(rpc_pb2.WatchResponse(header=header, watch_id=wid, created=True))
        kv = self._s.sm.kv
        try:
            self._s.sm.hub.add(watcher, req.start_revision, kv.revision, kv.compact_revision)
        except CompactedWatch as exc:
            self.out.put_nowait(
                rpc_pb2.WatchResponse(
                    header=self._s.header(),
                    watch_id=wid,
                    canceled=True,
                    compact_revision=exc.revision,
                    cancel_reason=errors.COMPACTED.message,
                )
            )
            return
        self._watchers[wid] = watcher

    def cancel(self, watch_id: int) -> None:
        """Stop a watcher and confirm."""
        watcher = self._watchers.pop(watch_id, None)
        if watcher is not None:
            self._s.sm.hub.remove(watcher)
        self.out.put_nowait(
            rpc_pb2.WatchResponse(header=self._s.header(), watch_id=watch_id, canceled=True)
        )

    async def read(self, requests: AsyncIterator[rpc_pb2.WatchRequest]) -> None:
        """Handle requests until the client stops sending."""
        async for req in requests:
            kind = req.WhichOneof("request_union")
            if kind == "create_request":
                self.create(req.create_request)
            elif kind == "cancel_request":
                self.cancel(req.cancel_request.watch_id)
            elif kind == "progress_request":
                self.out.put_nowait(rpc_pb2.WatchResponse(header=self._s.header(), watch_id=-1))

    async def progress_loop(self) -> None:
        """Tell idle watchers that asked for it how far the store has progressed."""
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL_S)
            revision = self._s.sm.kv.revision
            for watcher in list(self._watchers.values()):
                if watcher.progress_notify and watcher.last_sent_rev < revision:
                    watcher.last_sent_rev = revision
                    self.out.put_nowait(
                        rpc_pb2.WatchResponse(header=self._s.header(), watch_id=watcher.watch_id)
                    )

    def close(self) -> None:
        """Drop every watcher of this stream."""
        for watcher in self._watchers.values():
            self._s.sm.hub.remove(watcher)
        self._watchers.clear()


AUTH_METHODS = (
    "AuthEnable", "AuthDisable", "AuthStatus", "Authenticate", "UserAdd", "UserGet",
    "UserList", "UserDelete", "UserChangePassword", "UserGrantRole", "UserRevokeRole",
    "RoleAdd", "RoleGet", "RoleList", "RoleDelete", "RoleGrantPermission",
    "RoleRevokePermission",
)  # fmt: skip


def auth_handler() -> grpc.GenericRpcHandler[Any, Any]:
    """etcdserverpb.Auth: every method answers UNIMPLEMENTED with the reason."""

    async def refuse(request: bytes, context: Ctx) -> bytes:
        del request
        await context.abort(errors.AUTH_UNIMPLEMENTED.code, errors.AUTH_UNIMPLEMENTED.message)
        raise AssertionError("unreachable")

    handlers = {name: grpc.unary_unary_rpc_method_handler(refuse) for name in AUTH_METHODS}
    return grpc.method_handlers_generic_handler("etcdserverpb.Auth", handlers)


class _Malformed:
    """Stands in for a request whose bytes did not parse."""


_MALFORMED = _Malformed()


class RejectMalformed(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Answer unparseable unary requests with INVALID_ARGUMENT instead of gRPC's generic
    UNKNOWN, so a client learns the request itself was at fault."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """Wrap the deserializer and behaviour of unary-unary handlers."""
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None or handler.request_deserializer is None:
            return handler
        parse = handler.request_deserializer
        behaviour = handler.unary_unary
        method = handler_call_details.method

        def safe_parse(data: bytes) -> object:
            try:
                return parse(data)
            except DecodeError:
                return _MALFORMED

        async def guarded(request: object, context: Ctx) -> object:
            if request is _MALFORMED:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"kvstore: malformed request for {method}"
                )
            return await behaviour(request, context)  # type: ignore[arg-type]

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=safe_parse,
            response_serializer=handler.response_serializer,
        )
