"""etcdserverpb.Watch: many watchers multiplexed on one bidirectional stream.

The stream handler reads requests (create, cancel, progress) in one task and writes
responses from one queue, so the events the hub delivers synchronously during apply keep
their order and never wait on the network.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from kvstore.api.gen.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvstore.api.gen.mvccpb import kv_pb2
from kvstore.server import errors
from kvstore.server.auth_store import AuthInfo
from kvstore.server.etcd import EtcdServer
from kvstore.server.services import Ctx, Observer
from kvstore.server.watch import CompactedWatch, Watcher

_WATCH = "etcdserverpb.Watch"
MAX_QUEUED = 256
"""Responses a stream holds for a client that reads slowly; past it, its watchers stop
taking live events and later catch up from history (see :mod:`kvstore.server.watch`)."""
CATCH_UP_BELOW = MAX_QUEUED // 2
"""Queue length under which a stream's lagging watchers catch up."""
PROGRESS_INTERVAL_S = 5.0
"""How often a watcher with ``progress_notify`` hears the current revision when idle."""
_OWN_REASONS = {errors.INVALID_AUTH_TOKEN, errors.AUTH_OLD_REVISION, errors.USER_EMPTY}
"""Auth refusals a watch is cancelled with as they are; any other is "permission denied"."""

Permit = Callable[[rpc_pb2.WatchCreateRequest], Awaitable[str | None]]
"""Why a watch may not be created (None: it may)."""


class WatchService(rpc_pb2_grpc.WatchServicer):
    """etcdserverpb.Watch: many watchers multiplexed on one bidirectional stream."""

    def __init__(self, server: EtcdServer, observer: Observer) -> None:
        self._s = server
        self._o = observer

    async def Watch(
        self, request_iterator: AsyncIterator[rpc_pb2.WatchRequest], context: Ctx
    ) -> AsyncIterator[rpc_pb2.WatchResponse]:
        """Create, cancel and progress requests in; events and notifications out."""
        self._o.started("bidi_stream", _WATCH, "Watch")

        async def permit(req: rpc_pb2.WatchCreateRequest) -> str | None:
            """Read permission on the watched key or range, as the caller now is."""
            try:
                identify = self._o.identify
                who = await identify(context) if identify is not None else None
                self._s.sm.auth.check_range(who or AuthInfo(), req.key, req.range_end)
            except errors.EtcdError as exc:
                return exc.message if exc in _OWN_REASONS else errors.PERMISSION_DENIED.message
            return None

        stream = _WatchStream(self._s, permit)
        reader = asyncio.get_running_loop().create_task(stream.read(request_iterator))
        ticker = asyncio.get_running_loop().create_task(stream.progress_loop())
        try:
            while True:
                item = await stream.out.get()
                if item is None:
                    break
                yield item
                if stream.out.qsize() < CATCH_UP_BELOW:
                    stream.catch_up()
                    stream.send_deferred_progress()
        finally:
            for task in (reader, ticker):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            stream.close()
            # A watch stream ends when the client goes away: etcd counts it as cancelled.
            self._o.handled("bidi_stream", _WATCH, "Watch", grpc.StatusCode.CANCELLED)


class _WatchStream:
    """The watchers of one stream and the queue of what to send."""

    def __init__(self, server: EtcdServer, permit: Permit | None = None) -> None:
        self._s = server
        self._permit = permit
        self.out: asyncio.Queue[rpc_pb2.WatchResponse | None] = asyncio.Queue()
        self._watchers: dict[int, Watcher] = {}
        self._next_id = 0
        self._progress_deferred = False

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

    def _has_room(self) -> bool:
        return self.out.qsize() < MAX_QUEUED

    def catch_up(self) -> None:
        """Let this stream's lagging watchers catch up, now that the client has read."""
        hub, kv = self._s.sm.hub, self._s.sm.kv
        if hub.lagging:
            hub.catch_up(list(self._watchers.values()), kv.revision, kv.compact_revision)

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
            has_room=self._has_room,
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
                refused = await self._permit(req.create_request) if self._permit else None
                if refused is not None:
                    self.out.put_nowait(
                        rpc_pb2.WatchResponse(
                            header=self._s.header(),
                            watch_id=-1,
                            created=True,
                            canceled=True,
                            cancel_reason=refused,
                        )
                    )
                    continue
                self.create(req.create_request)
            elif kind == "cancel_request":
                self.cancel(req.cancel_request.watch_id)
            elif kind == "progress_request":
                self.request_progress()

    def request_progress(self) -> None:
        """Answer a RequestWatchProgress: a response with ``watch_id`` -1 whose header
        revision every watcher of the stream has been sent all events up to. While one of
        them still catches up from history, the answer waits until it is level (etcd 3.5.13
        and later; kube-apiserver's consistent reads from its cache rely on it)."""
        hub = self._s.sm.hub
        if any(hub.is_lagging(w) for w in self._watchers.values()):
            self._progress_deferred = True
            return
        self._progress_deferred = False
        self.out.put_nowait(rpc_pb2.WatchResponse(header=self._s.header(), watch_id=-1))

    def send_deferred_progress(self) -> None:
        """Send a progress answer that waited, once no watcher lags any more."""
        if self._progress_deferred:
            self.request_progress()

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
