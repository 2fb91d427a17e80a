"""The asynchronous client: etcd v3 calls over gRPC with failover across endpoints.

A call goes to the current endpoint; when that endpoint cannot serve it (connection refused,
member stopping, no leader, leader changed) the client moves to the next endpoint and tries
again, until every endpoint was tried ``rounds`` times and the call's timeout ran out.
Writes are retried only when they surely were not applied (see :func:`_retryable`). Errors
that are the request's own fault (invalid argument, compacted revision, ...) are raised at
once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import grpc

from kvstore.api.gen.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvstore.client.errors import ClientError, NoEndpointAvailable

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 10.0
_NOT_APPLIED = (
    "etcdserver: no leader",
    "etcdserver: not leader",
    "etcdserver: leader changed",
    "etcdserver: server stopped",
)
"""Errors kvstore (like etcd) only returns for a request that was not applied."""
_UNKNOWN_OUTCOME = (
    "etcdserver: request timed out",
)  # fmt: skip
"""Errors after which a write may or may not have been applied."""


_OPTIONS = [
    ("grpc.max_receive_message_length", 2**31 - 1),
    ("grpc.max_send_message_length", 2**31 - 1),
    # Come back quickly to a member that restarted.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def prefix_end(prefix: bytes) -> bytes:
    """The range end that selects every key starting with ``prefix``."""
    buf = bytearray(prefix)
    for i in range(len(buf) - 1, -1, -1):
        if buf[i] < 0xFF:
            buf[i] += 1
            return bytes(buf[: i + 1])
    return b"\0"


def _target(endpoint: str) -> str:
    return endpoint.split("://", 1)[-1].rstrip("/")


def _never_sent(exc: grpc.aio.AioRpcError) -> bool:
    details = (exc.details() or "").lower()
    return exc.code() == grpc.StatusCode.UNAVAILABLE and (
        "failed to connect" in details or "connection refused" in details
    )


def _retryable(exc: grpc.aio.AioRpcError, write: bool) -> bool:
    """Whether to try the call again on another endpoint.

    Reads are retried after any failure of the endpoint or the cluster. Writes only when
    the request surely was not applied (no connection, no leader, refused by a follower),
    so a retry can never apply a put or a txn twice; other failures reach the caller, whose
    write may or may not have happened (as with etcd's own client).
    """
    details = exc.details() or ""
    if any(details.startswith(d) for d in _NOT_APPLIED) or _never_sent(exc):
        return True
    if write:
        return False
    if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return True
    return any(details.startswith(d) for d in _UNKNOWN_OUTCOME)


class _Write(Generic[T]):
    """Marks a call as a write, which :meth:`Client._call` resends only when it surely was
    not applied. A wrapper rather than a flag, so subclasses that override ``_call`` keep
    its signature."""

    def __init__(self, fn: Callable[[_Endpoint, float], Awaitable[T]]) -> None:
        self._fn = fn

    def __call__(self, ep: _Endpoint, timeout: float) -> Awaitable[T]:
        return self._fn(ep, timeout)


class _Endpoint:
    def __init__(self, address: str, credentials: grpc.ChannelCredentials | None) -> None:
        self.address = address
        target = _target(address)
        if credentials is not None:
            self.channel = grpc.aio.secure_channel(target, credentials, options=_OPTIONS)
        else:
            self.channel = grpc.aio.insecure_channel(target, options=_OPTIONS)
        self.kv = rpc_pb2_grpc.KVStub(self.channel)
        self.watch = rpc_pb2_grpc.WatchStub(self.channel)
        self.lease = rpc_pb2_grpc.LeaseStub(self.channel)
        self.cluster = rpc_pb2_grpc.ClusterStub(self.channel)
        self.maintenance = rpc_pb2_grpc.MaintenanceStub(self.channel)


class Client:
    """An etcd v3 client for kvstore (or etcd) with multi-endpoint failover."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        rounds: int = 3,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one endpoint is required")
        self._endpoints = [_Endpoint(e, credentials) for e in endpoints]
        self._current = 0
        self.timeout = timeout
        self._rounds = rounds

    @property
    def endpoint(self) -> str:
        """The endpoint calls go to now."""
        return self._endpoints[self._current].address

    async def close(self) -> None:
        """Close every channel."""
        for ep in self._endpoints:
            await ep.channel.close(None)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, fn: Callable[[_Endpoint, float], Awaitable[T]]) -> T:
        """Run ``fn(endpoint, timeout)``, moving to the next endpoint on retryable errors
        until every endpoint was tried ``rounds`` times and the call's time ran out."""
        deadline = time.monotonic() + self.timeout
        last: grpc.aio.AioRpcError | None = None
        attempt = 0
        while True:
            ep = self._endpoints[self._current]
            remaining = deadline - time.monotonic()
            try:
                return await fn(ep, max(remaining, 0.5))
            except grpc.aio.AioRpcError as exc:
                if not _retryable(exc, isinstance(fn, _Write)):
                    raise ClientError(exc.code(), exc.details() or "", ep.address) from None
                last = exc
            attempt += 1
            self._current = (self._current + 1) % len(self._endpoints)
            exhausted = attempt >= self._rounds * len(self._endpoints)
            if exhausted and time.monotonic() >= deadline:
                raise NoEndpointAvailable(last.code(), last.details() or "", "all endpoints")
            if self._current == 0 or len(self._endpoints) == 1:
                await asyncio.sleep(min(0.05 * 2 ** min(attempt, 4), 0.5))

    # -- KV -------------------------------------------------------------------------------

    async def put(
        self, key: bytes, value: bytes, *, lease: int = 0, prev_kv: bool = False
    ) -> rpc_pb2.PutResponse:
        """Write ``key``."""
        req = rpc_pb2.PutRequest(key=key, value=value, lease=lease, prev_kv=prev_kv)
        return await self._call(_Write(lambda ep, t: ep.kv.Put(req, timeout=t)))

    async def get(
        self,
        key: bytes,
        *,
        range_end: bytes = b"",
        prefix: bool = False,
        revision: int = 0,
        limit: int = 0,
        serializable: bool = False,
        keys_only: bool = False,
        count_only: bool = False,
    ) -> rpc_pb2.RangeResponse:
        """Read a key, a range or a prefix (linearizable unless ``serializable``)."""
        req = rpc_pb2.RangeRequest(
            key=key,
            range_end=prefix_end(key) if prefix else range_end,
            revision=revision,
            limit=limit,
            serializable=serializable,
            keys_only=keys_only,
            count_only=count_only,
        )
        return await self._call(lambda ep, t: ep.kv.Range(req, timeout=t))

    async def delete(
        self, key: bytes, *, prefix: bool = False, range_end: bytes = b"", prev_kv: bool = False
    ) -> rpc_pb2.DeleteRangeResponse:
        """Delete a key, a range or a prefix."""
        req = rpc_pb2.DeleteRangeRequest(
            key=key, range_end=prefix_end(key) if prefix else range_end, prev_kv=prev_kv
        )
        return await self._call(_Write(lambda ep, t: ep.kv.DeleteRange(req, timeout=t)))

    async def txn(self, request: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        """Run a transaction."""
        return await self._call(_Write(lambda ep, t: ep.kv.Txn(request, timeout=t)))

    async def compact(self, revision: int) -> rpc_pb2.CompactionResponse:
        """Discard history before ``revision``."""
        req = rpc_pb2.CompactionRequest(revision=revision)
        return await self._call(_Write(lambda ep, t: ep.kv.Compact(req, timeout=t)))

    # -- leases ---------------------------------------------------------------------------

    async def lease_grant(self, ttl: int, lease_id: int = 0) -> rpc_pb2.LeaseGrantResponse:
        """Grant a lease of ``ttl`` seconds."""
        req = rpc_pb2.LeaseGrantRequest(TTL=ttl, ID=lease_id)
        return await self._call(_Write(lambda ep, t: ep.lease.LeaseGrant(req, timeout=t)))

    async def lease_revoke(self, lease_id: int) -> rpc_pb2.LeaseRevokeResponse:
        """Revoke a lease and delete its keys."""
        req = rpc_pb2.LeaseRevokeRequest(ID=lease_id)
        return await self._call(_Write(lambda ep, t: ep.lease.LeaseRevoke(req, timeout=t)))

    async def lease_time_to_live(
        self, lease_id: int, keys: bool = False
    ) -> rpc_pb2.LeaseTimeToLiveResponse:
        """Remaining TTL (-1 when the lease is gone)."""
        req = rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=keys)
        return await self._call(lambda ep, t: ep.lease.LeaseTimeToLive(req, timeout=t))

    async def lease_keep_alive_once(self, lease_id: int) -> rpc_pb2.LeaseKeepAliveResponse:
        """Renew a lease once (TTL 0 in the answer: the lease is gone)."""

        async def call(ep: _Endpoint, timeout: float) -> rpc_pb2.LeaseKeepAliveResponse:
            stream = ep.lease.LeaseKeepAlive(
                iter([rpc_pb2.LeaseKeepAliveRequest(ID=lease_id)]), timeout=timeout
            )
            async for resp in stream:
                return resp
            raise ClientError(
                grpc.StatusCode.UNAVAILABLE, "keep-alive stream closed without an answer"
            )

        return await self._call(call)

    # -- watch ----------------------------------------------------------------------------

    async def watch(
        self,
        key: bytes,
        *,
        prefix: bool = False,
        range_end: bytes = b"",
        start_revision: int = 0,
        prev_kv: bool = False,
    ) -> AsyncIterator[rpc_pb2.WatchResponse]:
        """Stream watch responses (the first is the ``created`` confirmation).

        On a broken stream the watch resumes on the next endpoint from the revision after
        the last event seen, so a consumer sees no gap and no duplicate.
        """
        next_rev = start_revision
        end = prefix_end(key) if prefix else range_end
        failures = 0
        while True:
            ep = self._endpoints[self._current]
            create = rpc_pb2.WatchRequest(
                create_request=rpc_pb2.WatchCreateRequest(
                    key=key, range_end=end, start_revision=next_rev, prev_kv=prev_kv
                )
            )
            try:
                async for resp in ep.watch.Watch(iter([create])):
                    failures = 0
                    if resp.events:
                        next_rev = resp.events[-1].kv.mod_revision + 1
                    elif resp.created and next_rev == 0:
                        next_rev = resp.header.revision + 1
                    yield resp
                    if resp.canceled:
                        return
            except grpc.aio.AioRpcError as exc:
                if not _retryable(exc, write=False):
                    raise ClientError(exc.code(), exc.details() or "", ep.address) from None
            failures += 1
            if failures > self._rounds * len(self._endpoints):
                raise NoEndpointAvailable(grpc.StatusCode.UNAVAILABLE, "watch", "all endpoints")
            self._current = (self._current + 1) % len(self._endpoints)
            await asyncio.sleep(0.1)

    # -- cluster and maintenance ----------------------------------------------------------------

    async def member_list(self) -> rpc_pb2.MemberListResponse:
        """The members of the cluster."""
        req = rpc_pb2.MemberListRequest()
        return await self._call(lambda ep, t: ep.cluster.MemberList(req, timeout=t))

    async def member_add(
        self, peer_urls: Sequence[str], learner: bool = False
    ) -> rpc_pb2.MemberAddResponse:
        """Add a member (or a learner)."""
        req = rpc_pb2.MemberAddRequest(peerURLs=list(peer_urls), isLearner=learner)
        return await self._call(_Write(lambda ep, t: ep.cluster.MemberAdd(req, timeout=t)))

    async def member_remove(self, member_id: int) -> rpc_pb2.MemberRemoveResponse:
        """Remove a member."""
        req = rpc_pb2.MemberRemoveRequest(ID=member_id)
        return await self._call(_Write(lambda ep, t: ep.cluster.MemberRemove(req, timeout=t)))

    async def member_promote(self, member_id: int) -> rpc_pb2.MemberPromoteResponse:
        """Promote a learner."""
        req = rpc_pb2.MemberPromoteRequest(ID=member_id)
        return await self._call(_Write(lambda ep, t: ep.cluster.MemberPromote(req, timeout=t)))

    async def status(self, endpoint: str | None = None) -> rpc_pb2.StatusResponse:
        """The status of one endpoint (the current one by default), without failover."""
        ep = self._pick(endpoint)
        try:
            return await ep.maintenance.Status(rpc_pb2.StatusRequest(), timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise ClientError(exc.code(), exc.details() or "", ep.address) from None

    async def move_leader(self, target: int) -> rpc_pb2.MoveLeaderResponse:
        """Hand leadership to member ``target``."""
        req = rpc_pb2.MoveLeaderRequest(targetID=target)
        return await self._call(_Write(lambda ep, t: ep.maintenance.MoveLeader(req, timeout=t)))

    async def alarms(self) -> rpc_pb2.AlarmResponse:
        """The raised alarms."""
        req = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET)
        return await self._call(lambda ep, t: ep.maintenance.Alarm(req, timeout=t))

    async def disarm(self) -> rpc_pb2.AlarmResponse:
        """Clear every alarm."""
        req = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.DEACTIVATE)
        return await self._call(_Write(lambda ep, t: ep.maintenance.Alarm(req, timeout=t)))

    def _pick(self, endpoint: str | None) -> _Endpoint:
        if endpoint is None:
            return self._endpoints[self._current]
        for ep in self._endpoints:
            if ep.address == endpoint:
                return ep
        raise ValueError(f"unknown endpoint {endpoint}")

    @property
    def endpoints(self) -> list[str]:
        """Every configured endpoint."""
        return [ep.address for ep in self._endpoints]
