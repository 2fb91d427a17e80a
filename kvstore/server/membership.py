"""Membership changes, decided on the leader: validation, the strict reconfiguration check,
and the Raft configuration change that carries the member in its context.

The leader alone runs these (followers forward them); the change takes effect on every
member when the conf change entry is applied (see ``StateMachine.apply_conf_change``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from google.protobuf.message import Message as PbMessage

from kvstore.api.gen.etcdserverpb import rpc_pb2
from kvstore.api.gen.kvstorepb import internal_pb2
from kvstore.raft.types import NONE, ConfChange, ConfChangeType
from kvstore.server import errors, ids
from kvstore.server.config import ConfigError, ServerConfig, parse_url
from kvstore.server.node import Node
from kvstore.server.statemachine import StateMachine, unwrap

R = TypeVar("R", bound=PbMessage)

REQUEST_TIMEOUT_S = 7.0
"""How long a proposal may take to be applied before the caller hears "request timed out"."""
LEARNER_READY_PERCENT = 0.9
"""A learner may be promoted once it has 90% of the leader's log (etcd's rule)."""


def check_peer_urls(urls: Iterable[str]) -> None:
    """Refuse a member's peer URLs unless each one parses, as etcd does."""
    for url in urls:
        try:
            parse_url("peerURLs", url)
        except ConfigError:
            raise errors.MEMBER_BAD_URLS from None


class Membership:
    """Member add, remove, promote and update, run on the leader."""

    def __init__(
        self, config: ServerConfig, node: Node, sm: StateMachine, clock: Callable[[], float]
    ) -> None:
        self.config = config
        self.node = node
        self.sm = sm
        self._clock = clock
        self._peer_seen: dict[int, float] = {}

    async def _conf_change(
        self, change: ConfChangeType, member: internal_pb2.MemberInfo, kind: type[R]
    ) -> R:
        request_id = self.node.next_request_id()
        context = internal_pb2.ConfChangeContext(member=member, request_id=request_id)
        cc = ConfChange(type=change, node_id=member.id, context=context.SerializeToString())
        result = await self.node.propose_conf_change(cc, request_id, REQUEST_TIMEOUT_S)
        return unwrap(result, kind)

    async def add(self, req: rpc_pb2.MemberAddRequest) -> rpc_pb2.MemberAddResponse:
        """Add a voter or learner with a fresh id; its URLs must be new to the cluster."""
        urls = {u.rstrip("/") for u in req.peerURLs}
        for member in self.sm.members.values():
            if urls & set(member.peer_urls):
                raise errors.PEER_URL_EXIST
        new_id = ids.member_id(urls, self.config.initial_cluster_token, str(self.node.applied))
        if new_id in self.sm.members or new_id in self.sm.removed:
            raise errors.MEMBER_EXIST
        member = internal_pb2.MemberInfo(id=new_id, peer_urls=sorted(urls))
        if not req.isLearner:
            self._check_quorum_after(added=1)
        # A new member must start from a snapshot: the log alone does not carry the
        # bootstrap membership.
        self.node.force_snapshot()
        change = ConfChangeType.ADD_LEARNER if req.isLearner else ConfChangeType.ADD_NODE
        return await self._conf_change(change, member, rpc_pb2.MemberAddResponse)

    def note_peer(self, member_id: int) -> None:
        """A Raft message from ``member_id`` arrived (the peer service calls this)."""
        self._peer_seen[member_id] = self._clock()

    def _active(self, member_id: int) -> bool:
        """Heard from within three election timeouts (etcd's "connected since" test)."""
        window = 3 * self.config.election_timeout_ms / 1000
        seen = self._peer_seen.get(member_id)
        return member_id == self.node.member_id or (
            seen is not None and self._clock() - seen <= window
        )

    def _check_quorum_after(self, added: int, removed: int = NONE, joining: int = NONE) -> None:
        """Refuse a voter change that would leave fewer active voters than a quorum of the
        new configuration (etcd's strict reconfiguration check): adding a voter to a cluster
        with a member down, or removing a live one, must not cost the cluster its quorum."""
        voters = [mid for mid, m in self.sm.members.items() if not m.is_learner]
        active = {mid for mid in voters if self._active(mid)}
        if joining != NONE and self._active(joining):
            active.add(joining)
        active.discard(removed)
        size = len(voters) + added
        if len(active) < size // 2 + 1:
            raise errors.NOT_ENOUGH_STARTED

    async def remove(self, req: rpc_pb2.MemberRemoveRequest) -> rpc_pb2.MemberRemoveResponse:
        member = self.sm.members.get(req.ID)
        if member is None:
            raise errors.MEMBER_NOT_FOUND
        if not member.is_learner:
            self._check_quorum_after(added=-1, removed=req.ID)
        return await self._conf_change(
            ConfChangeType.REMOVE_NODE, member, rpc_pb2.MemberRemoveResponse
        )

    async def promote(self, req: rpc_pb2.MemberPromoteRequest) -> rpc_pb2.MemberPromoteResponse:
        member = self.sm.members.get(req.ID)
        if member is None:
            raise errors.MEMBER_NOT_FOUND
        if not member.is_learner:
            raise errors.MEMBER_NOT_LEARNER
        progress = self.node.raw_status().progress.get(req.ID)
        if progress is None or progress.match < self.node.commit * LEARNER_READY_PERCENT:
            raise errors.LEARNER_NOT_READY
        self._check_quorum_after(added=1, joining=req.ID)
        return await self._conf_change(
            ConfChangeType.ADD_NODE, member, rpc_pb2.MemberPromoteResponse
        )

    async def update(self, req: rpc_pb2.MemberUpdateRequest) -> rpc_pb2.MemberUpdateResponse:
        if req.ID not in self.sm.members:
            raise errors.MEMBER_NOT_FOUND
        check_peer_urls(req.peerURLs)
        result = await self.node.propose(
            internal_pb2.InternalRequest(member_update=req), REQUEST_TIMEOUT_S
        )
        return unwrap(result, rpc_pb2.MemberUpdateResponse)
