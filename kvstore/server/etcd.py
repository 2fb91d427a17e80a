"""The member's request logic behind every etcd API call: validation, quota, where each
request runs (locally, through Raft, or forwarded to the leader) and the leader-only work
(lease timing, membership changes, leadership transfer).

The gRPC services are thin shells around :class:`EtcdServer`; the peer service calls
:meth:`EtcdServer.handle_forward` when another member forwards a request here.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

import grpc
from google.protobuf.message import Message as PbMessage

from kvstore.api.gen.etcdserverpb import rpc_pb2
from kvstore.api.gen.kvstorepb import internal_pb2
from kvstore.raft.types import NONE
from kvstore.server import errors, tracing
from kvstore.server.auth_store import ROOT_USER
from kvstore.server.config import ServerConfig
from kvstore.server.identity import caller, caller_or_anonymous, require_caller
from kvstore.server.lessor import MAX_LEASE_TTL
from kvstore.server.membership import REQUEST_TIMEOUT_S, Membership, check_peer_urls
from kvstore.server.node import Node
from kvstore.server.statemachine import StateMachine, etcd_error, member_pb, unwrap
from kvstore.server.transport import Transport
from kvstore.server.version import ETCD_VERSION
from kvstore.storage.errors import MvccError
from kvstore.storage.fsutil import data_dir_bytes

log = logging.getLogger(__name__)

R = TypeVar("R", bound=PbMessage)
C = TypeVar(
    "C",
    rpc_pb2.MemberListResponse,
    rpc_pb2.MemberAddResponse,
    rpc_pb2.MemberRemoveResponse,
    rpc_pb2.MemberPromoteResponse,
    rpc_pb2.MemberUpdateResponse,
)

FORWARD_ATTEMPTS = 3
MAX_APPLY_GAP = 5000
"""Committed entries this member may have left to apply before it refuses new proposals
with "too many requests", as etcd does (its maxGapBetweenApplyAndCommitIndex)."""


def never_sent(exc: grpc.aio.AioRpcError) -> bool:
    """Whether a failed call certainly never reached the server (no connection could be
    made), so repeating it cannot apply a request twice."""
    details = (exc.details() or "").lower()
    return exc.code() == grpc.StatusCode.UNAVAILABLE and (
        "failed to connect" in details or "connection refused" in details
    )


def _count_ops(req: rpc_pb2.TxnRequest) -> int:
    return max(len(req.success), len(req.failure))


class EtcdServer:
    """Request handling for one member."""

    def __init__(
        self,
        config: ServerConfig,
        node: Node,
        sm: StateMachine,
        transport: Transport,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.node = node
        self.sm = sm
        self.transport = transport
        self._clock = clock
        self._revoking: set[int] = set()
        self.membership = Membership(config, node, sm, clock)
        self._alarm_pending = False
        self.accepting = True

    @property
    def member_id(self) -> int:
        """This member's id."""
        return self.node.member_id

    def header(self) -> rpc_pb2.ResponseHeader:
        """The header of a response served by this member."""
        return self.sm.header()

    # -- helpers ----------------------------------------------------------------------------

    def check_admin(self) -> None:
        """Root only, once auth is enabled (etcd's IsAdminPermitted)."""
        self.sm.auth.check_admin(caller_or_anonymous())

    def _stamp(self, request: internal_pb2.InternalRequest) -> None:
        """Name the caller in a proposal, so applying checks its permissions as of the
        entry's place in the log."""
        if request.HasField("auth"):
            return
        who = caller()
        if who is not None:
            request.auth.username = who.username
            request.auth.auth_revision = who.revision

    def _check_accepting(self) -> None:
        if not self.accepting:
            raise errors.STOPPED

    def _check_size(self, req: PbMessage) -> None:
        if req.ByteSize() > self.config.max_request_bytes:
            raise errors.REQUEST_TOO_LARGE

    def _check_quota(self, extra: int) -> None:
        """Refuse writes under the NOSPACE alarm, and raise it when this write would
        exceed the quota."""
        if self.sm.nospace:
            raise errors.NO_SPACE
        if self.sm.kv.db_size + extra > self.config.quota_backend_bytes:
            self._raise_nospace()
            raise errors.NO_SPACE

    def _raise_nospace(self) -> None:
        if self._alarm_pending:
            return
        self._alarm_pending = True
        alarm = rpc_pb2.AlarmRequest(
            action=rpc_pb2.AlarmRequest.ACTIVATE,
            memberID=self.member_id,
            alarm=rpc_pb2.AlarmType.Value("NOSPACE"),
        )

        async def propose() -> None:
            try:
                await self.replicate(
                    internal_pb2.InternalRequest(alarm=alarm), rpc_pb2.AlarmResponse
                )
            except errors.EtcdError as exc:
                log.warning("could not raise the NOSPACE alarm: %s", exc.message)
            finally:
                self._alarm_pending = False

        asyncio.get_running_loop().create_task(propose())

    async def _leader(self) -> int:
        return await self.node.wait_leader(self.config.election_timeout_ms / 1000 * 3)

    async def _forward(self, op: internal_pb2.LeaderOp, kind: type[R]) -> R:
        """Run ``op`` on the leader: here, or sent there (with the trace context)."""
        last: errors.EtcdError = errors.NO_LEADER
        for _ in range(FORWARD_ATTEMPTS):
            leader = await self._leader()
            if leader == self.member_id:
                response = await self._leader_op(op)
                assert isinstance(response, kind)
                return response
            stub = self.transport.stub(leader)
            if stub is None:
                raise errors.NO_LEADER.with_leader(leader)
            request = internal_pb2.ForwardRequest(leader_op=op)
            with tracing.span("forward") as span:
                span.set_attribute("kvstore.leader", f"{leader:x}")
                try:
                    answer = await stub.Forward(
                        request, timeout=REQUEST_TIMEOUT_S, metadata=tracing.outgoing_metadata()
                    )
                except grpc.aio.AioRpcError as exc:
                    details = exc.details() or ""
                    code = exc.code()
                    if code == grpc.StatusCode.FAILED_PRECONDITION and details.startswith(
                        errors.NOT_LEADER.message
                    ):
                        last = errors.LEADER_CHANGED.with_leader(self.node.leader)
                        await asyncio.sleep(0.05)
                        continue
                    if details.startswith("etcdserver:"):
                        raise errors.EtcdError(code, details) from None
                    if never_sent(exc):
                        # The leader is gone and never saw the request: wait for the
                        # cluster to elect another and send it there.
                        await self._wait_leader_change(leader)
                        last = errors.LEADER_CHANGED.with_leader(self.node.leader)
                        continue
                    # The leader may have applied it before the call broke: sending it
                    # again could apply it twice, so the outcome is reported as unknown.
                    raise errors.TIMEOUT_LEADER_FAIL.with_leader(self.node.leader) from None
            return kind.FromString(answer.response)
        raise last

    async def _wait_leader_change(self, old: int) -> None:
        """Wait (up to two election timeouts) until the node follows a leader other than
        ``old``."""
        deadline = self._clock() + 2 * self.config.election_timeout_ms / 1000
        while self._clock() < deadline and self.node.leader in (old, NONE):
            await asyncio.sleep(0.02)

    async def replicate(self, request: internal_pb2.InternalRequest, kind: type[R]) -> R:
        """Put ``request`` through Raft from this member, leader or not.

        A follower's proposal reaches the leader inside the Raft core's own messages, so a
        write costs the leader no extra RPC; the answer comes from applying the entry here.
        A proposal refused because no leader is known was never sent, so it is retried once
        an election has given the cluster a leader.
        """
        self._check_accepting()
        st = self.node.status()
        if st.commit > st.applied + MAX_APPLY_GAP:
            raise errors.TOO_MANY_REQUESTS
        self._stamp(request)
        for attempt in range(FORWARD_ATTEMPTS):
            await self._leader()
            try:
                result = await self.node.propose(request, REQUEST_TIMEOUT_S)
            except errors.EtcdError as exc:
                if exc.message != errors.NO_LEADER.message or attempt == FORWARD_ATTEMPTS - 1:
                    raise
                continue
            return unwrap(result, kind)
        raise errors.NO_LEADER

    async def _on_leader(self, op: internal_pb2.LeaderOp, kind: type[R]) -> R:
        self._check_accepting()
        return await self._forward(op, kind)

    async def handle_forward(self, request: internal_pb2.ForwardRequest) -> bytes:
        """A request forwarded by another member; this member must be the leader.

        Leader-only work arrives here. So may a proposal, from a member of an earlier
        version that forwarded writes this way (a rolling upgrade runs both): it is
        proposed here as if a client had sent it."""
        self._check_accepting()
        if not self.node.status().is_leader:
            hint = self.node.leader
            raise errors.NOT_LEADER.with_leader(hint)
        body = request.WhichOneof("body")
        if body == "proposal":
            result = await self.node.propose(request.proposal, REQUEST_TIMEOUT_S)
            if result.error is not None:
                raise result.error
            assert result.response is not None
            return result.response.SerializeToString()
        return (await self._leader_op(request.leader_op)).SerializeToString()

    # -- KV ---------------------------------------------------------------------------------

    async def linearize(self) -> None:
        """Wait until local state reflects every write committed before now."""
        await self.node.read_index(REQUEST_TIMEOUT_S)

    async def range(self, req: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        """Range: linearizable through ReadIndex unless serializable."""
        self._check_accepting()
        if not req.key:
            raise errors.EMPTY_KEY
        if req.sort_order not in (0, 1, 2) or req.sort_target not in (0, 1, 2, 3, 4):
            raise errors.INVALID_SORT
        if not req.serializable:
            await self.linearize()
        self.sm.auth.check_range(caller_or_anonymous(), req.key, req.range_end)
        return self.sm.range(req)

    async def put(self, req: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
        """Put through Raft."""
        self._check_put(req)
        self._check_size(req)
        self._check_quota(len(req.key) + len(req.value))
        return await self.replicate(internal_pb2.InternalRequest(put=req), rpc_pb2.PutResponse)

    @staticmethod
    def _check_put(req: rpc_pb2.PutRequest) -> None:
        if not req.key:
            raise errors.EMPTY_KEY
        if req.ignore_value and req.value:
            raise errors.VALUE_PROVIDED
        if req.ignore_lease and req.lease:
            raise errors.LEASE_PROVIDED

    async def delete_range(self, req: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
        """DeleteRange through Raft (allowed under NOSPACE: deleting frees space)."""
        if not req.key:
            raise errors.EMPTY_KEY
        self._check_size(req)
        return await self.replicate(
            internal_pb2.InternalRequest(delete_range=req), rpc_pb2.DeleteRangeResponse
        )

    def _check_txn(self, req: rpc_pb2.TxnRequest) -> tuple[bool, int]:
        """Validate a txn; returns (has writes, bytes it may add)."""
        if _count_ops(req) > self.config.max_txn_ops:
            raise errors.TOO_MANY_OPS
        writes = False
        added = 0
        for op in [*req.success, *req.failure]:
            kind = op.WhichOneof("request")
            if kind == "request_range" and not op.request_range.key:
                raise errors.EMPTY_KEY
            if kind == "request_put":
                self._check_put(op.request_put)
                writes = True
                added += len(op.request_put.key) + len(op.request_put.value)
            if kind == "request_delete_range":
                if not op.request_delete_range.key:
                    raise errors.EMPTY_KEY
                writes = True
            if kind == "request_txn":
                sub_writes, sub_added = self._check_txn(op.request_txn)
                writes = writes or sub_writes
                added += sub_added
        return writes, added

    async def txn(self, req: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        """Txn: read-only ones are served locally after ReadIndex, others through Raft."""
        self._check_accepting()
        writes, added = self._check_txn(req)
        self._check_size(req)
        if not writes:
            await self.linearize()
            self.sm.auth.check_txn(caller_or_anonymous(), req, self.sm.lease_keys)
            return self.sm.read_txn(req)
        if added:
            self._check_quota(added)
        return await self.replicate(internal_pb2.InternalRequest(txn=req), rpc_pb2.TxnResponse)

    async def compact(self, req: rpc_pb2.CompactionRequest) -> rpc_pb2.CompactionResponse:
        """Compact through Raft."""
        return await self.replicate(
            internal_pb2.InternalRequest(compaction=req), rpc_pb2.CompactionResponse
        )

    # -- leases -------------------------------------------------------------------------------

    async def lease_grant(self, req: rpc_pb2.LeaseGrantRequest) -> rpc_pb2.LeaseGrantResponse:
        """Grant: the id is chosen before proposing, so applying stays deterministic."""
        if req.TTL > MAX_LEASE_TTL:
            raise errors.LEASE_TTL_TOO_LARGE
        require_caller(self.sm.auth)
        if self.sm.nospace:
            raise errors.NO_SPACE
        grant = rpc_pb2.LeaseGrantRequest(TTL=req.TTL, ID=req.ID)
        if grant.ID == 0:
            grant.ID = random.getrandbits(62) + 1
        elif grant.ID < 0:
            raise errors.EtcdError(grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: bad lease ID")
        return await self.replicate(
            internal_pb2.InternalRequest(lease_grant=grant), rpc_pb2.LeaseGrantResponse
        )

    async def lease_revoke(self, req: rpc_pb2.LeaseRevokeRequest) -> rpc_pb2.LeaseRevokeResponse:
        """Revoke through Raft: the attached keys go at one revision on every member (the
        caller needs write permission on each of them, checked when it is applied)."""
        require_caller(self.sm.auth)
        return await self.replicate(
            internal_pb2.InternalRequest(lease_revoke=req), rpc_pb2.LeaseRevokeResponse
        )

    async def lease_keep_alive(self, lease_id: int) -> rpc_pb2.LeaseKeepAliveResponse:
        """Renew on the leader, which alone keeps deadlines. With auth on, the caller needs
        write permission on the lease's keys (root needs none)."""
        auth = self.sm.auth
        if auth.enabled:
            who = caller()
            if who is None:
                raise errors.USER_EMPTY
            auth.check_lease_keys(who, self.sm.lease_keys(lease_id))
        op = internal_pb2.LeaderOp(lease_keep_alive=rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
        return await self._on_leader(op, rpc_pb2.LeaseKeepAliveResponse)

    async def lease_time_to_live(
        self, req: rpc_pb2.LeaseTimeToLiveRequest
    ) -> rpc_pb2.LeaseTimeToLiveResponse:
        """Remaining TTL, as the leader's clock sees it; listing the keys needs read
        permission on each of them."""
        auth = self.sm.auth
        require_caller(auth)
        if req.keys and auth.enabled:
            who = caller_or_anonymous()
            if not auth.is_admin(who):
                for key in self.sm.lease_keys(req.ID):
                    auth.check_range(who, key, b"")
        op = internal_pb2.LeaderOp(lease_time_to_live=req)
        return await self._on_leader(op, rpc_pb2.LeaseTimeToLiveResponse)

    async def lease_leases(self) -> rpc_pb2.LeaseLeasesResponse:
        """Every lease, from linearized local state."""
        await self.linearize()
        auth = self.sm.auth
        if auth.enabled:
            who = caller()
            if who is None:
                raise errors.USER_EMPTY
            if not auth.is_admin(who):
                for lease in self.sm.kv.leases():
                    for key in lease.keys:
                        auth.check_range(who, key, b"")
        resp = rpc_pb2.LeaseLeasesResponse(header=self.header())
        for lease in self.sm.kv.leases():
            resp.leases.add(ID=lease.id)
        return resp

    async def _leader_op(self, op: internal_pb2.LeaderOp) -> PbMessage:  # noqa: PLR0911
        kind = op.WhichOneof("op")
        if kind == "lease_keep_alive":
            return await self._keep_alive_here(op.lease_keep_alive.ID)
        if kind == "lease_time_to_live":
            return await self._ttl_here(op.lease_time_to_live)
        if kind == "member_add":
            return await self.membership.add(op.member_add)
        if kind == "member_remove":
            return await self.membership.remove(op.member_remove)
        if kind == "member_promote":
            return await self.membership.promote(op.member_promote)
        if kind == "member_update":
            return await self.membership.update(op.member_update)
        if kind == "move_leader":
            return await self._move_leader_here(op.move_leader)
        raise errors.EtcdError(grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: empty request")

    async def _keep_alive_here(self, lease_id: int) -> rpc_pb2.LeaseKeepAliveResponse:
        # The lease must exist as of now: wait for what is committed to be applied.
        await self.node.wait_applied(self.node.commit, REQUEST_TIMEOUT_S)
        if lease_id not in {lease.id for lease in self.sm.kv.leases()}:
            return rpc_pb2.LeaseKeepAliveResponse(header=self.header(), ID=lease_id, TTL=0)
        ttl = self.sm.kv.lease(lease_id).ttl
        self.sm.leases.renew(lease_id, ttl)
        return rpc_pb2.LeaseKeepAliveResponse(header=self.header(), ID=lease_id, TTL=ttl)

    async def _ttl_here(
        self, req: rpc_pb2.LeaseTimeToLiveRequest
    ) -> rpc_pb2.LeaseTimeToLiveResponse:
        await self.node.wait_applied(self.node.commit, REQUEST_TIMEOUT_S)
        known = {lease.id: lease for lease in self.sm.kv.leases()}
        info = known.get(req.ID)
        if info is None:
            return rpc_pb2.LeaseTimeToLiveResponse(header=self.header(), ID=req.ID, TTL=-1)
        resp = rpc_pb2.LeaseTimeToLiveResponse(
            header=self.header(),
            ID=req.ID,
            TTL=self.sm.leases.remaining(req.ID, info.ttl),
            grantedTTL=info.ttl,
        )
        if req.keys:
            resp.keys.extend(info.keys)
        return resp

    def expire_leases(self) -> None:
        """Leader, every tick: propose the revocation of leases past their deadline."""
        for lease_id in self.sm.leases.expired():
            if lease_id in self._revoking:
                continue
            self._revoking.add(lease_id)

            async def revoke(lease_id: int = lease_id) -> None:
                # An expiry is the server's own act: it revokes as root (etcd's WithRoot).
                request = internal_pb2.InternalRequest(
                    lease_revoke=rpc_pb2.LeaseRevokeRequest(ID=lease_id)
                )
                request.auth.username = ROOT_USER
                request.auth.auth_revision = self.sm.auth.revision
                try:
                    await self.node.propose(request, REQUEST_TIMEOUT_S)
                except errors.EtcdError as exc:
                    log.info("lease %x revocation failed: %s", lease_id, exc.message)
                finally:
                    self._revoking.discard(lease_id)

            asyncio.get_running_loop().create_task(revoke())

    # -- cluster ------------------------------------------------------------------------------

    def _cluster_answer(self, resp: C) -> C:
        """A Cluster API answer with this member's header, which there carries no
        revision, as etcd's (membership is not part of the key space)."""
        resp.header.CopyFrom(self.header())
        resp.header.ClearField("revision")
        return resp

    async def member_list(self, linearizable: bool) -> rpc_pb2.MemberListResponse:
        """The member table (after a ReadIndex if asked)."""
        if linearizable:
            await self.linearize()
        return self._cluster_answer(rpc_pb2.MemberListResponse(members=self.sm.member_list()))

    async def member_add(self, req: rpc_pb2.MemberAddRequest) -> rpc_pb2.MemberAddResponse:
        """Add a member (or a learner) through a Raft configuration change."""
        self.check_admin()
        if not req.peerURLs:
            raise errors.MEMBER_BAD_URLS
        check_peer_urls(req.peerURLs)
        return self._cluster_answer(
            await self._on_leader(internal_pb2.LeaderOp(member_add=req), rpc_pb2.MemberAddResponse)
        )

    async def member_remove(self, req: rpc_pb2.MemberRemoveRequest) -> rpc_pb2.MemberRemoveResponse:
        """Remove a member through a Raft configuration change."""
        self.check_admin()
        return self._cluster_answer(
            await self._on_leader(
                internal_pb2.LeaderOp(member_remove=req), rpc_pb2.MemberRemoveResponse
            )
        )

    async def member_promote(
        self, req: rpc_pb2.MemberPromoteRequest
    ) -> rpc_pb2.MemberPromoteResponse:
        """Promote a learner that has caught up."""
        self.check_admin()
        return self._cluster_answer(
            await self._on_leader(
                internal_pb2.LeaderOp(member_promote=req), rpc_pb2.MemberPromoteResponse
            )
        )

    async def member_update(self, req: rpc_pb2.MemberUpdateRequest) -> rpc_pb2.MemberUpdateResponse:
        """Change a member's peer URLs."""
        self.check_admin()
        return self._cluster_answer(
            await self._on_leader(
                internal_pb2.LeaderOp(member_update=req), rpc_pb2.MemberUpdateResponse
            )
        )

    # -- maintenance --------------------------------------------------------------------------

    async def move_leader(self, req: rpc_pb2.MoveLeaderRequest) -> rpc_pb2.MoveLeaderResponse:
        """Transfer leadership to ``targetID``."""
        self.check_admin()
        return await self._on_leader(
            internal_pb2.LeaderOp(move_leader=req), rpc_pb2.MoveLeaderResponse
        )

    async def _move_leader_here(self, req: rpc_pb2.MoveLeaderRequest) -> rpc_pb2.MoveLeaderResponse:
        target = self.sm.members.get(req.targetID)
        if target is None or target.is_learner:
            raise errors.BAD_LEADER_TRANSFEREE
        if req.targetID == self.member_id:
            return rpc_pb2.MoveLeaderResponse(header=self.header())
        await self.transfer_leadership(req.targetID, REQUEST_TIMEOUT_S)
        if self.node.leader != req.targetID:
            raise errors.TIMEOUT
        return rpc_pb2.MoveLeaderResponse(header=self.header())

    async def transfer_leadership(self, target: int, timeout: float) -> None:
        """Ask the core to hand leadership to ``target`` and wait until it happens, the
        core abandons it (the target did not take over within an election timeout: it may
        be stopping too) or ``timeout`` passes."""
        self.node.transfer_leader(target)
        deadline = self._clock() + timeout
        begun = False
        while self._clock() < deadline and self.node.leader in (self.member_id, NONE):
            transferee = self.node.raw_status().lead_transferee
            if transferee == target:
                begun = True
            elif begun and self.node.leader == self.member_id:
                return
            await asyncio.sleep(0.02)

    def best_transferee(self) -> int:
        """The most up-to-date voter other than this member (NONE if there is none)."""
        status = self.node.raw_status()
        best, best_match = NONE, -1
        for member_id, progress in status.progress.items():
            if member_id == self.member_id or progress.is_learner:
                continue
            if progress.match > best_match:
                best, best_match = member_id, progress.match
        return best

    async def alarm(self, req: rpc_pb2.AlarmRequest) -> rpc_pb2.AlarmResponse:
        """List alarms (locally) or change them (through Raft, root only)."""
        if req.action == rpc_pb2.AlarmRequest.GET:
            require_caller(self.sm.auth)
            resp = rpc_pb2.AlarmResponse(header=self.header())
            for member_id, alarm in sorted(self.sm.alarms):
                if req.memberID in (0, member_id) and req.alarm in (0, alarm):
                    resp.alarms.add(memberID=member_id, alarm=rpc_pb2.AlarmType.ValueType(alarm))
            return resp
        self.check_admin()
        return await self.replicate(internal_pb2.InternalRequest(alarm=req), rpc_pb2.AlarmResponse)

    def status(self) -> rpc_pb2.StatusResponse:
        """This member's view of the cluster (etcdctl endpoint status)."""
        require_caller(self.sm.auth)
        st = self.node.status()
        member = self.sm.members.get(self.member_id)
        errs = [
            f"memberID:{m:x} alarm:{rpc_pb2.AlarmType.Name(rpc_pb2.AlarmType.ValueType(a))}"
            for m, a in sorted(self.sm.alarms)
        ]
        # etcd's dbSize is its database file; here the state lives in the WAL and the
        # snapshots, so their bytes on disk are the size, and the live data in it is in use.
        disk = data_dir_bytes(self.config.data_dir)
        return rpc_pb2.StatusResponse(
            header=self.header(),
            version=ETCD_VERSION,
            dbSize=disk,
            dbSizeInUse=min(disk, self.sm.kv.db_size),
            dbSizeQuota=self.config.quota_backend_bytes,
            leader=st.leader,
            raftIndex=st.commit,
            raftTerm=st.term,
            raftAppliedIndex=st.applied,
            isLearner=bool(member is not None and member.is_learner),
            errors=errs,
        )

    def hash_kv(self, revision: int) -> rpc_pb2.HashKVResponse:
        """A hash of the key space up to ``revision``, comparable across members."""
        try:
            value, rev = self.sm.kv.hash_kv(revision)
        except MvccError as exc:
            raise etcd_error(exc) from None
        return rpc_pb2.HashKVResponse(
            header=self.header(),
            hash=value,
            # etcd answers -1 until the first compaction.
            compact_revision=self.sm.kv.compact_revision or -1,
            hash_revision=rev,
        )

    def member_info(self) -> list[rpc_pb2.Member]:
        """The member table as the Cluster API shows it."""
        return [member_pb(m) for m in self.sm.members.values()]
