"""The peer service: Raft messages in, forwarded requests in, the member list out.

It listens on the peer URLs, apart from the client API, so peer traffic can be firewalled
and secured (``--peer-*`` TLS flags) on its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc

from kvstore.api.gen.kvstorepb import internal_pb2, internal_pb2_grpc
from kvstore.raft.codec import decode_message
from kvstore.raft.errors import CodecError
from kvstore.server import errors, tracing
from kvstore.server.etcd import EtcdServer
from kvstore.server.services import LEADER_HINT_KEY
from kvstore.server.transport import CLUSTER_ID_KEY

Ctx: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class PeerService(internal_pb2_grpc.PeerServicer):
    """kvstorepb.Peer."""

    def __init__(self, server: EtcdServer) -> None:
        self._s = server

    async def Step(
        self, request: internal_pb2.StepRequest, context: Ctx
    ) -> internal_pb2.StepResponse:
        """Decode and hand Raft messages to the node; messages from removed members are
        refused so a removed member cannot disturb the cluster."""
        await self._check_cluster(context)
        await self._deliver(request, context)
        return internal_pb2.StepResponse()

    async def _check_cluster(self, context: Ctx) -> None:
        sent = dict(context.invocation_metadata() or ())
        theirs = sent.get(CLUSTER_ID_KEY)
        if theirs is not None and theirs != f"{self._s.sm.cluster_id:x}":
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"kvstore: cluster ID mismatch (ours {self._s.sm.cluster_id:x}, theirs {theirs})",
            )

    async def _deliver(self, request: internal_pb2.StepRequest, context: Ctx) -> None:
        try:
            messages = [decode_message(raw) for raw in request.messages]
        except CodecError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad raft message: {exc}")
            raise
        removed = self._s.sm.removed
        accepted = [m for m in messages if m.from_ not in removed]
        for sender in {m.from_ for m in accepted}:
            self._s.membership.note_peer(sender)
        if len(accepted) != len(messages):
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, "kvstore: the sending member was removed"
            )
        try:
            self._s.node.step(accepted)
        except errors.EtcdError as exc:
            await context.abort(exc.code, exc.message)

    async def StepStream(
        self, request_iterator: AsyncIterator[internal_pb2.StepRequest], context: Ctx
    ) -> internal_pb2.StepResponse:
        """The long-lived form of :meth:`Step`: one batch of messages per stream message."""
        await self._check_cluster(context)
        async for request in request_iterator:
            await self._deliver(request, context)
        return internal_pb2.StepResponse()

    async def Forward(
        self, request: internal_pb2.ForwardRequest, context: Ctx
    ) -> internal_pb2.ForwardResponse:
        """Run a request forwarded by a follower, inside the caller's trace."""
        with tracing.server_span("peer/Forward", context.invocation_metadata):
            try:
                data = await self._s.handle_forward(request)
            except errors.EtcdError as exc:
                if exc.leader_hint:
                    context.set_trailing_metadata(((LEADER_HINT_KEY, f"{exc.leader_hint:x}"),))
                await context.abort(exc.code, exc.message)
                raise
        return internal_pb2.ForwardResponse(response=data)

    async def Members(
        self, request: internal_pb2.MembersRequest, context: Ctx
    ) -> internal_pb2.MembersResponse:
        """The cluster id and member table, for a member that is joining."""
        resp = internal_pb2.MembersResponse(cluster_id=self._s.sm.cluster_id)
        resp.members.extend(self._s.sm.members[i] for i in sorted(self._s.sm.members))
        return resp
