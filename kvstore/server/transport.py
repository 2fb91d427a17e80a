"""Sending Raft messages and forwarded requests to other members over gRPC.

One sender task per peer drains that peer's queue in order and writes everything queued as
one batch on a long-lived ``StepStream`` call, so a busy leader pays one stream write per
batch instead of one RPC per message; snapshots go as their own ``Step`` call, whose outcome
the core needs. A send
that fails is reported back to the Raft core (unreachable peer, failed snapshot) through
callbacks; the core retries on its own schedule, so messages are never re-sent here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from kvstore.api.gen.kvstorepb import internal_pb2, internal_pb2_grpc
from kvstore.raft.codec import encode_message
from kvstore.raft.types import Message, MessageType
from kvstore.server import tracing

log = logging.getLogger(__name__)

MAX_PEER_MESSAGE_BYTES = 512 * 1024 * 1024
"""Snapshots travel inside one Step call, so peer channels accept large messages."""
PEER_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_PEER_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_PEER_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 10_000),
    # A restarted peer must be reachable again within a heartbeat or two, not after
    # gRPC's default reconnect backoff (up to two minutes).
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
CLUSTER_ID_KEY = "kvstore-cluster-id"
"""Metadata on every Step call, so a member never accepts Raft traffic from another cluster."""
_STEP_TIMEOUT_S = 5.0
_SNAPSHOT_TIMEOUT_S = 60.0
_MAX_BATCH = 512


def grpc_target(url: str) -> str:
    """``http://host:port`` -> ``host:port`` (gRPC target syntax)."""
    return url.split("://", 1)[-1].rstrip("/")


@dataclass(eq=False)
class _Peer:
    member_id: int
    urls: tuple[str, ...]
    channel: grpc.aio.Channel
    stub: internal_pb2_grpc.PeerAsyncStub
    queue: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


class Transport:
    """The peer connections of one member."""

    def __init__(
        self,
        on_unreachable: Callable[[int], None],
        on_snapshot_status: Callable[[int, bool], None],
        credentials: grpc.ChannelCredentials | None = None,
        cluster_id: int = 0,
    ) -> None:
        self._peers: dict[int, _Peer] = {}
        self._cluster_metadata = (CLUSTER_ID_KEY, f"{cluster_id:x}")
        self._on_unreachable = on_unreachable
        self._on_snapshot_status = on_snapshot_status
        self._credentials = credentials
        self._closed = False

    def _channel(self, urls: tuple[str, ...]) -> grpc.aio.Channel:
        target = grpc_target(urls[0])
        if self._credentials is not None and urls[0].startswith("https"):
            return grpc.aio.secure_channel(target, self._credentials, options=PEER_CHANNEL_OPTIONS)
        return grpc.aio.insecure_channel(target, options=PEER_CHANNEL_OPTIONS)

    def set_peers(self, peers: dict[int, tuple[str, ...]]) -> None:
        """Make the peer set equal to ``peers`` (id -> peer URLs), reconnecting on change."""
        for member_id in list(self._peers):
            if member_id not in peers or self._peers[member_id].urls != peers[member_id]:
                self._drop(member_id)
        for member_id, urls in peers.items():
            if member_id not in self._peers and urls and not self._closed:
                channel = self._channel(urls)
                peer = _Peer(member_id, urls, channel, internal_pb2_grpc.PeerStub(channel))
                peer.task = asyncio.get_running_loop().create_task(self._sender(peer))
                self._peers[member_id] = peer

    def _drop(self, member_id: int) -> None:
        peer = self._peers.pop(member_id)
        asyncio.get_running_loop().create_task(self._retire(peer))

    async def _retire(self, peer: _Peer, grace: float = 2.0) -> None:
        """Stop a dropped peer's sender once what it has queued is sent (at most ``grace``
        seconds): the last message to a removed member tells it of its removal."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while not peer.queue.empty() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(min(0.2, max(0.0, deadline - loop.time())))  # the send in flight
        if peer.task is not None:
            peer.task.cancel()
        await peer.channel.close(None)

    def stub(self, member_id: int) -> internal_pb2_grpc.PeerAsyncStub | None:
        """The Peer stub of a member (for forwarding), or None if unknown."""
        peer = self._peers.get(member_id)
        return None if peer is None else peer.stub

    def send(self, messages: tuple[Message, ...]) -> None:
        """Queue messages for their peers; messages to unknown members are dropped."""
        for msg in messages:
            peer = self._peers.get(msg.to)
            if peer is not None:
                peer.queue.put_nowait(msg)

    async def _sender(self, peer: _Peer) -> None:
        stream: grpc.aio.StreamUnaryCall[Any, Any] | None = None
        while True:
            batch = [await peer.queue.get()]
            while not peer.queue.empty() and len(batch) < _MAX_BATCH:
                batch.append(peer.queue.get_nowait())
            snapshots = [m for m in batch if m.type == MessageType.SNAP]
            others = [m for m in batch if m.type != MessageType.SNAP]
            if others:
                stream = await self._stream_send(peer, stream, others)
            for snap in snapshots:
                await self._send_snapshot(peer, snap)

    async def _stream_send(
        self,
        peer: _Peer,
        stream: grpc.aio.StreamUnaryCall[Any, Any] | None,
        messages: list[Message],
    ) -> grpc.aio.StreamUnaryCall[Any, Any] | None:
        """Write one batch on the peer's long-lived stream, opening it when needed.

        One stream per peer keeps the per-batch cost to a message write instead of a whole
        call. A broken stream is reported as an unreachable peer and reopened next time.
        """
        request = internal_pb2.StepRequest(messages=[encode_message(m) for m in messages])
        try:
            if stream is None or stream.done():
                stream = peer.stub.StepStream(metadata=(self._cluster_metadata,))  # type: ignore[call-arg]
            async with asyncio.timeout(_STEP_TIMEOUT_S):  # no task per write, as wait_for makes
                await stream.write(request)
            return stream
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError, TimeoutError) as exc:
            log.debug("stream to %x broke: %s", peer.member_id, exc)
            if stream is not None:
                stream.cancel()
            self._on_unreachable(peer.member_id)
            # Do not spin against a dead peer; the core will retry on its own.
            await asyncio.sleep(0.05)
            return None

    async def _send_snapshot(self, peer: _Peer, snap: Message) -> None:
        request = internal_pb2.StepRequest(messages=[encode_message(snap)])
        try:
            await peer.stub.Step(
                request,
                timeout=_SNAPSHOT_TIMEOUT_S,
                metadata=(*tracing.outgoing_metadata(), self._cluster_metadata),
            )
        except grpc.aio.AioRpcError as exc:
            log.info("snapshot to %x failed: %s", peer.member_id, exc.code())
            self._on_unreachable(peer.member_id)
            self._on_snapshot_status(peer.member_id, False)
            return
        self._on_snapshot_status(peer.member_id, True)

    async def close(self) -> None:
        """Stop every sender and close every channel."""
        self._closed = True
        for peer in list(self._peers.values()):
            if peer.task is not None:
                peer.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await peer.task
            await peer.channel.close(None)
        self._peers.clear()
