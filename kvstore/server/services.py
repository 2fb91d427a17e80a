"""The etcd v3 gRPC services: thin shells that observe each call (metrics, a server span)
and turn :class:`~kvstore.server.errors.EtcdError` into the gRPC status etcd would send.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

import grpc

from kvstore.api.gen.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvstore.server import errors, snapshot_file, tracing
from kvstore.server.auth_store import AuthInfo
from kvstore.server.etcd import EtcdServer
from kvstore.server.identity import REQUEST_AUTH
from kvstore.server.metrics import Metrics
from kvstore.server.version import ETCD_CLUSTER_VERSION

log = logging.getLogger(__name__)

T = TypeVar("T")

SNAPSHOT_CHUNK_BYTES = 32 * 1024
LEADER_HINT_KEY = "kvstore-leader"
"""Trailing metadata on UNAVAILABLE/FAILED_PRECONDITION errors: the leader's id (hex)."""


Ctx: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Identify: TypeAlias = Callable[[Ctx], Awaitable[AuthInfo | None]]
"""Reads a call's credentials (see :mod:`kvstore.server.auth_service`)."""


def code_name(code: grpc.StatusCode) -> str:
    """A status code as grpc-go spells it in metrics (``InvalidArgument``)."""
    if code == grpc.StatusCode.OK:
        return "OK"
    return "".join(part.capitalize() for part in code.name.split("_"))


MAX_IN_FLIGHT = 10_000
"""Unary calls a member handles at once; past it a call is refused at once with etcd's
"too many requests" (RESOURCE_EXHAUSTED), so overload gets a clear answer and a bounded
memory cost instead of gRPC's bare CANCELLED for calls it had no handler for."""


class Observer:
    """Wraps handlers with metrics, a server span, the caller's identity, error
    translation and the in-flight limit."""

    def __init__(
        self,
        metrics: Metrics,
        identify: Identify | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self._metrics = metrics
        self.identify = identify
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        # Labelled children looked up once per method (and code), not on every call.
        self._started: dict[tuple[str, str, str], Any] = {}
        self._handling: dict[tuple[str, str, str], Any] = {}
        self._handled: dict[tuple[str, str, str, grpc.StatusCode], Any] = {}

    def started(self, grpc_type: str, service: str, method: str) -> None:
        """Count the start of a call (:meth:`unary` does it for unary calls)."""
        key = (grpc_type, service, method)
        child = self._started.get(key)
        if child is None:
            child = self._started[key] = self._metrics.grpc_started.labels(*key)
        child.inc()

    def handled(self, grpc_type: str, service: str, method: str, code: grpc.StatusCode) -> None:
        """Count the end of a call."""
        key = (grpc_type, service, method, code)
        child = self._handled.get(key)
        if child is None:
            labels = (grpc_type, service, method, code_name(code))
            child = self._handled[key] = self._metrics.grpc_handled.labels(*labels)
        child.inc()

    def _observe_handling(self, grpc_type: str, service: str, method: str, seconds: float) -> None:
        key = (grpc_type, service, method)
        child = self._handling.get(key)
        if child is None:
            child = self._handling[key] = self._metrics.grpc_handling.labels(*key)
        child.observe(seconds)

    async def authorize(
        self, context: Ctx, check: Callable[[], None], grpc_type: str, service: str, method: str
    ) -> None:
        """For a streaming call: run ``check`` as the caller, and end the call with its
        error (counted as handled) if it fails."""
        reset = None
        try:
            if self.identify is not None:
                reset = REQUEST_AUTH.set(await self.identify(context))
            check()
        except errors.EtcdError as exc:
            self.handled(grpc_type, service, method, exc.code)
            await context.abort(exc.code, exc.message)
            raise
        finally:
            if reset is not None:
                REQUEST_AUTH.reset(reset)

    async def unary(
        self,
        service: str,
        method: str,
        context: Ctx,
        call: Callable[[], Awaitable[T]],
        grpc_type: str = "unary",
        *,
        identify: bool = True,
    ) -> T:
        """Run ``call`` as the handler of ``service/method``, with the caller's identity
        in :data:`~kvstore.server.identity.REQUEST_AUTH` (unless ``identify`` is off)."""
        self.started(grpc_type, service, method)
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        self._in_flight += 1
        try:
            with tracing.server_span(f"{service}/{method}", context.invocation_metadata):
                reset = None
                try:
                    if self._in_flight > self._max_in_flight:
                        raise errors.TOO_MANY_REQUESTS
                    if identify and self.identify is not None:
                        reset = REQUEST_AUTH.set(await self.identify(context))
                    return await call()
                except errors.EtcdError as exc:
                    code = exc.code
                    if exc.leader_hint:
                        context.set_trailing_metadata(((LEADER_HINT_KEY, f"{exc.leader_hint:x}"),))
                    await context.abort(exc.code, exc.message)
                    raise  # abort raises; this keeps type checkers informed
                finally:
                    if reset is not None:
                        REQUEST_AUTH.reset(reset)
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        finally:
            self._in_flight -= 1
            self.handled(grpc_type, service, method, code)
            self._observe_handling(grpc_type, service, method, time.perf_counter() - started)


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
        """The store lives in memory and compaction frees space at once: nothing to do
        (but only root may ask, as in etcd)."""

        async def run() -> rpc_pb2.DefragmentResponse:
            self._s.check_admin()
            return rpc_pb2.DefragmentResponse(header=self._s.header())

        return await self._o.unary(_MAINT, "Defragment", context, run)

    async def Hash(self, request: rpc_pb2.HashRequest, context: Ctx) -> rpc_pb2.HashResponse:
        """The hash of the whole key space at the current revision."""

        async def run() -> rpc_pb2.HashResponse:
            self._s.check_admin()
            resp = self._s.hash_kv(0)
            return rpc_pb2.HashResponse(header=resp.header, hash=resp.hash)

        return await self._o.unary(_MAINT, "Hash", context, run)

    async def HashKV(self, request: rpc_pb2.HashKVRequest, context: Ctx) -> rpc_pb2.HashKVResponse:
        """See :meth:`EtcdServer.hash_kv` (root only)."""

        async def run() -> rpc_pb2.HashKVResponse:
            self._s.check_admin()
            return self._s.hash_kv(request.revision)

        return await self._o.unary(_MAINT, "HashKV", context, run)

    async def Snapshot(
        self, request: rpc_pb2.SnapshotRequest, context: Ctx
    ) -> AsyncIterator[rpc_pb2.SnapshotResponse]:
        """Stream a consistent snapshot as etcd does: its bbolt database in chunks
        (``remaining_bytes`` counts the database), then the database's SHA-256 alone."""
        self._o.started("server_stream", _MAINT, "Snapshot")
        await self._o.authorize(context, self._s.check_admin, "server_stream", _MAINT, "Snapshot")
        try:
            exported = await snapshot_file.export(self._s.sm, self._s.config.data_dir)
        except OSError as exc:
            self._o.handled("server_stream", _MAINT, "Snapshot", grpc.StatusCode.INTERNAL)
            await context.abort(grpc.StatusCode.INTERNAL, f"etcdserver: snapshot failed: {exc}")
            raise AssertionError("unreachable") from exc
        header = self._s.header()
        with exported.file as f:
            sent = 0
            while sent < exported.size:
                chunk = f.read(min(SNAPSHOT_CHUNK_BYTES, exported.size - sent))
                if not chunk:
                    break
                sent += len(chunk)
                yield rpc_pb2.SnapshotResponse(
                    header=header,
                    remaining_bytes=exported.size - sent,
                    blob=chunk,
                    version=ETCD_CLUSTER_VERSION,
                )
        yield rpc_pb2.SnapshotResponse(
            header=header, remaining_bytes=0, blob=exported.digest, version=ETCD_CLUSTER_VERSION
        )
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
