"""The replicated state of a member: the MVCC store plus the members and alarms beside it.

Applying is deterministic (the same entries give the same state and the same answers on
every member); the only outputs with side effects are the watch events published to the
hub and the lease grants/revokes reported to the leader's lease clock. Store errors become
etcd errors here, in one place.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import Message as PbMessage

from kvstore.api.gen.etcdserverpb import rpc_pb2
from kvstore.api.gen.kvstorepb import internal_pb2
from kvstore.api.gen.mvccpb import kv_pb2
from kvstore.raft.types import ConfChange, ConfChangeType
from kvstore.server import convert, errors
from kvstore.server.auth_store import AuthInfo, AuthStore
from kvstore.server.lessor import LeaseClock
from kvstore.server.tokens import SimpleTokens, TokenProvider
from kvstore.server.watch import CompactedWatch, WatchHub
from kvstore.storage import mvcc_types as m
from kvstore.storage.errors import (
    CompactedError,
    FutureRevisionError,
    InvalidRequestError,
    KeyNotFoundError,
    LeaseExistsError,
    LeaseNotFoundError,
    MvccError,
)
from kvstore.storage.mvcc import MvccStore, SnapshotEncoder

NOSPACE = rpc_pb2.AlarmType.Value("NOSPACE")

ADMIN_REQUESTS = frozenset(
    {
        "auth_enable",
        "auth_disable",
        "auth_user_add",
        "auth_user_delete",
        "auth_user_change_password",
        "auth_user_grant_role",
        "auth_user_revoke_role",
        "auth_role_add",
        "auth_role_delete",
        "auth_role_grant_permission",
        "auth_role_revoke_permission",
    }
)
"""Requests only root may make once auth is enabled (checked at apply, as etcd does)."""

_INVALID_MESSAGES = {
    "key is not provided": errors.EMPTY_KEY,
    "duplicate key given in txn request": errors.DUPLICATE_KEY,
    "value is provided": errors.VALUE_PROVIDED,
    "lease is provided": errors.LEASE_PROVIDED,
}


def etcd_error(exc: MvccError) -> errors.EtcdError:  # noqa: PLR0911 (one return per kind)
    """The etcd error a client expects for a store error."""
    if isinstance(exc, CompactedError):
        return errors.COMPACTED
    if isinstance(exc, FutureRevisionError):
        return errors.FUTURE_REV
    if isinstance(exc, KeyNotFoundError):
        return errors.KEY_NOT_FOUND
    if isinstance(exc, LeaseNotFoundError):
        return errors.LEASE_NOT_FOUND
    if isinstance(exc, LeaseExistsError):
        return errors.LEASE_EXIST
    if isinstance(exc, InvalidRequestError):
        known = _INVALID_MESSAGES.get(str(exc))
        if known is not None:
            return known
    return errors.EtcdError(errors.EMPTY_KEY.code, f"etcdserver: {exc}")


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """An applied request's response (header filled in) or its error."""

    response: PbMessage | None = None
    error: errors.EtcdError | None = None


R = TypeVar("R", bound=PbMessage)


def unwrap(result: ApplyResult, kind: type[R]) -> R:
    """The response of ``result`` as ``kind``, or its error raised."""
    if result.error is not None:
        raise result.error
    assert isinstance(result.response, kind)
    return result.response


def _write_ops(ops: list[m.RequestOp]) -> bool:
    for op in ops:
        if isinstance(op, m.PutRequest):
            return True
        if isinstance(op, m.TxnRequest) and (
            _write_ops(list(op.success)) or _write_ops(list(op.failure))
        ):
            return True
    return False


class StateMachine:
    """The MVCC store, the member table and the alarms of one member."""

    def __init__(
        self,
        member_id: int,
        cluster_id: int,
        term: Callable[[], int],
        leases: LeaseClock,
        tokens: TokenProvider | None = None,
    ) -> None:
        self.member_id = member_id
        self.cluster_id = cluster_id
        self._term = term
        self.leases = leases
        self.kv = MvccStore()
        self.hub = WatchHub(self.events_since)
        self.members: dict[int, internal_pb2.MemberInfo] = {}
        self.removed: set[int] = set()
        self.alarms: set[tuple[int, int]] = set()
        self.auth = AuthStore()
        self.tokens: TokenProvider = tokens if tokens is not None else SimpleTokens()
        """Issued tokens: this member's memory, not replicated state (see tokens.py)."""

    # -- headers and reads ----------------------------------------------------------------

    def header(self) -> rpc_pb2.ResponseHeader:
        """The header every response carries."""
        return rpc_pb2.ResponseHeader(
            cluster_id=self.cluster_id,
            member_id=self.member_id,
            revision=self.kv.revision,
            raft_term=self._term(),
        )

    def range(self, req: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        """Serve a Range from local state."""
        try:
            resp = convert.range_response(self.kv.range(convert.range_request(req)))
        except MvccError as exc:
            raise etcd_error(exc) from None
        resp.header.CopyFrom(self.header())
        return resp

    def read_txn(self, req: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        """Serve a txn without writes from local state (the caller made the read safe)."""
        try:
            result = self.kv.execute(convert.txn_request(req))
        except MvccError as exc:
            raise etcd_error(exc) from None
        assert isinstance(result.response, m.TxnResponse)
        return convert.txn_response(result.response, self.header())

    def events_since(self, start: int, key: bytes, range_end: bytes) -> list[kv_pb2.Event]:
        """History for a watch starting in the past."""
        try:
            return [convert.event(e) for e in self.kv.events_since(start, key, range_end)]
        except CompactedError as exc:
            raise CompactedWatch(exc.compact_revision) from None

    @property
    def nospace(self) -> bool:
        """Whether the NOSPACE alarm is raised (only reads and deletes are accepted)."""
        return any(alarm == NOSPACE for _, alarm in self.alarms)

    def lease_keys(self, lease_id: int) -> Sequence[bytes]:
        """The keys attached to a lease (none if it is not granted)."""
        try:
            return self.kv.lease(lease_id).keys
        except LeaseNotFoundError:
            return ()

    def member_list(self) -> list[rpc_pb2.Member]:
        """The members, by id, as the Cluster API shows them."""
        return [member_pb(self.members[i]) for i in sorted(self.members)]

    # -- apply ----------------------------------------------------------------------------

    def apply(  # noqa: PLR0911, PLR0912 (one return per request kind)
        self, req: internal_pb2.InternalRequest, index: int, term: int
    ) -> ApplyResult:
        """Apply one committed request."""
        del term
        self.kv.applied_index = index
        kind = req.WhichOneof("request")
        try:
            if kind is not None and self.auth.enabled:
                self._check_permission(kind, req)
            if kind in ADMIN_REQUESTS or kind == "authenticate":
                return self._apply_auth(kind, req, index)
            if kind == "put":
                return self._write(convert.put_request(req.put), write=True)
            if kind == "delete_range":
                return self._write(convert.delete_request(req.delete_range), write=False)
            if kind == "txn":
                txn = convert.txn_request(req.txn)
                return self._write(txn, write=_write_ops([txn]))
            if kind == "compaction":
                self.kv.compact(req.compaction.revision)
                return ApplyResult(rpc_pb2.CompactionResponse(header=self.header()))
            if kind == "lease_grant":
                return self._grant(req.lease_grant)
            if kind == "lease_revoke":
                return self._write(m.LeaseRevokeRequest(req.lease_revoke.ID), write=False)
            if kind == "alarm":
                return self._alarm(req.alarm)
            if kind == "member_attributes":
                return self._attributes(req.member_attributes)
            if kind == "member_update":
                return self._member_update(req.member_update)
        except MvccError as exc:
            return ApplyResult(error=etcd_error(exc))
        except errors.EtcdError as exc:
            return ApplyResult(error=exc)
        return ApplyResult(
            error=errors.EtcdError(errors.EMPTY_KEY.code, "etcdserver: empty request")
        )

    def _check_permission(self, kind: str, req: internal_pb2.InternalRequest) -> None:
        """The sender's right to what it asks, against the auth state as of this entry."""
        info = AuthInfo(req.auth.username, req.auth.auth_revision)
        auth = self.auth
        if kind in ADMIN_REQUESTS:
            auth.check_admin(info)
        elif kind == "put":
            auth.check_put_request(info, req.put, self.lease_keys)
        elif kind == "delete_range":
            auth.check_delete_request(info, req.delete_range)
        elif kind == "txn":
            auth.check_txn(info, req.txn, self.lease_keys)
        elif kind == "lease_revoke":
            auth.check_lease_keys(info, self.lease_keys(req.lease_revoke.ID))

    def _apply_auth(self, kind: str, req: internal_pb2.InternalRequest, index: int) -> ApplyResult:
        auth = self.auth
        header = self.header()
        resp: PbMessage
        if kind == "auth_enable":
            auth.enable()
            resp = rpc_pb2.AuthEnableResponse(header=header)
        elif kind == "auth_disable":
            auth.disable()
            self.tokens.clear()
            resp = rpc_pb2.AuthDisableResponse(header=header)
        elif kind == "authenticate":
            auth.authenticate_user(req.authenticate.name)
            token = self.tokens.assign(
                req.authenticate.name, req.authenticate.simple_token, index, auth.revision
            )
            resp = rpc_pb2.AuthenticateResponse(header=header, token=token)
        elif kind == "auth_user_add":
            add = req.auth_user_add
            no_password = add.options.no_password
            auth.user_add(add.name, b"" if no_password else _hash(add.hashedPassword), no_password)
            resp = rpc_pb2.AuthUserAddResponse(header=header)
        elif kind == "auth_user_delete":
            auth.user_delete(req.auth_user_delete.name)
            self.tokens.invalidate_user(req.auth_user_delete.name)
            resp = rpc_pb2.AuthUserDeleteResponse(header=header)
        elif kind == "auth_user_change_password":
            change = req.auth_user_change_password
            user = auth.user(change.name)
            no_password = user is not None and user.options.no_password
            auth.user_change_password(
                change.name, b"" if no_password else _hash(change.hashedPassword)
            )
            self.tokens.invalidate_user(change.name)
            resp = rpc_pb2.AuthUserChangePasswordResponse(header=header)
        elif kind == "auth_user_grant_role":
            auth.user_grant_role(req.auth_user_grant_role.user, req.auth_user_grant_role.role)
            resp = rpc_pb2.AuthUserGrantRoleResponse(header=header)
        elif kind == "auth_user_revoke_role":
            auth.user_revoke_role(req.auth_user_revoke_role.name, req.auth_user_revoke_role.role)
            resp = rpc_pb2.AuthUserRevokeRoleResponse(header=header)
        elif kind == "auth_role_add":
            auth.role_add(req.auth_role_add.name)
            resp = rpc_pb2.AuthRoleAddResponse(header=header)
        elif kind == "auth_role_delete":
            auth.role_delete(req.auth_role_delete.role)
            resp = rpc_pb2.AuthRoleDeleteResponse(header=header)
        elif kind == "auth_role_grant_permission":
            grant = req.auth_role_grant_permission
            auth.role_grant_permission(grant.name, grant.perm if grant.HasField("perm") else None)
            resp = rpc_pb2.AuthRoleGrantPermissionResponse(header=header)
        else:
            revoke = req.auth_role_revoke_permission
            auth.role_revoke_permission(revoke.role, revoke.key, revoke.range_end)
            resp = rpc_pb2.AuthRoleRevokePermissionResponse(header=header)
        return ApplyResult(resp)

    def _write(self, req: m.Request, write: bool) -> ApplyResult:
        if write and self.nospace:
            return ApplyResult(error=errors.NO_SPACE)
        result = self.kv.execute(req)
        if result.events and len(self.hub):
            self.hub.publish(result.revision, [convert.event(e) for e in result.events])
        header = self.header()
        resp = result.response
        if isinstance(req, m.LeaseRevokeRequest):
            self.leases.revoked(req.id)
            return ApplyResult(rpc_pb2.LeaseRevokeResponse(header=header))
        out: PbMessage
        if isinstance(resp, m.PutResponse):
            out = convert.put_response(resp)
            out.header.CopyFrom(header)
        elif isinstance(resp, m.DeleteRangeResponse):
            out = convert.delete_response(resp)
            out.header.CopyFrom(header)
        elif isinstance(resp, m.TxnResponse):
            out = convert.txn_response(resp, header)
        else:
            raise InvalidRequestError(f"unexpected response {type(resp).__name__}")
        return ApplyResult(out)

    def _grant(self, req: rpc_pb2.LeaseGrantRequest) -> ApplyResult:
        if self.nospace:
            return ApplyResult(error=errors.NO_SPACE)
        ttl = self.leases.effective_ttl(req.TTL)
        self.kv.execute(m.LeaseGrantRequest(req.ID, ttl))
        self.leases.granted(req.ID, ttl)
        return ApplyResult(rpc_pb2.LeaseGrantResponse(header=self.header(), ID=req.ID, TTL=ttl))

    def _alarm(self, req: rpc_pb2.AlarmRequest) -> ApplyResult:
        key = (req.memberID, int(req.alarm))
        if req.action == rpc_pb2.AlarmRequest.ACTIVATE:
            self.alarms.add(key)
            changed = [key]
        elif req.memberID == 0 and req.alarm == rpc_pb2.AlarmType.Value("NONE"):
            changed = sorted(self.alarms)
            self.alarms.clear()
        else:
            matching = {
                a for a in self.alarms if (req.memberID in (0, a[0])) and (req.alarm in (0, a[1]))
            }
            changed = sorted(matching)
            self.alarms -= matching
        resp = rpc_pb2.AlarmResponse(header=self.header())
        for member_id, alarm in changed:
            resp.alarms.add(memberID=member_id, alarm=alarm)
        return ApplyResult(resp)

    def _attributes(self, req: internal_pb2.MemberAttributes) -> ApplyResult:
        member = self.members.get(req.id)
        if member is not None:
            member.name = req.name
            del member.client_urls[:]
            member.client_urls.extend(req.client_urls)
        return ApplyResult(rpc_pb2.MemberListResponse(header=self.header()))

    def _member_update(self, req: rpc_pb2.MemberUpdateRequest) -> ApplyResult:
        member = self.members.get(req.ID)
        if member is None:
            return ApplyResult(error=errors.MEMBER_NOT_FOUND)
        del member.peer_urls[:]
        member.peer_urls.extend(req.peerURLs)
        return ApplyResult(
            rpc_pb2.MemberUpdateResponse(header=self.header(), members=self.member_list())
        )

    def apply_conf_change(
        self, cc: ConfChange, context: internal_pb2.ConfChangeContext, index: int, term: int
    ) -> ApplyResult:
        """Follow a membership change the Raft core has applied."""
        del index, term
        if cc.type == ConfChangeType.REMOVE_NODE:
            self.members.pop(cc.node_id, None)
            self.removed.add(cc.node_id)
            self.alarms = {a for a in self.alarms if a[0] != cc.node_id}
            return ApplyResult(
                rpc_pb2.MemberRemoveResponse(header=self.header(), members=self.member_list())
            )
        existing = self.members.get(cc.node_id)
        if existing is not None and cc.type == ConfChangeType.ADD_NODE:
            existing.is_learner = False
            return ApplyResult(
                rpc_pb2.MemberPromoteResponse(header=self.header(), members=self.member_list())
            )
        info = internal_pb2.MemberInfo()
        info.CopyFrom(context.member)
        info.id = cc.node_id
        info.is_learner = cc.type == ConfChangeType.ADD_LEARNER
        self.members[cc.node_id] = info
        return ApplyResult(
            rpc_pb2.MemberAddResponse(
                header=self.header(), member=member_pb(info), members=self.member_list()
            )
        )

    # -- snapshots ------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The whole replicated state as bytes (the data of a Raft snapshot)."""
        encoder = self.snapshot_encoder()
        while not encoder.encode(1 << 30):
            pass
        return encoder.finish()

    def snapshot_encoder(self) -> StateEncoder:
        """An encoder of the state as it is now, which later applies do not disturb."""
        state = internal_pb2.ServerState()
        state.members.extend(self.members[i] for i in sorted(self.members))
        state.removed_members.extend(sorted(self.removed))
        for member_id, alarm in sorted(self.alarms):
            state.alarms.add(memberID=member_id, alarm=alarm)
        auth = self.auth.snapshot()
        state.auth.enabled = auth.enabled
        state.auth.revision = auth.revision
        state.auth.users.extend(auth.users)
        state.auth.roles.extend(auth.roles)
        return StateEncoder(state, SnapshotEncoder(self.kv))

    def restore(self, data: bytes) -> None:
        """Replace the replicated state by a snapshot's."""
        state = internal_pb2.ServerState.FromString(data)
        self.kv.restore(state.mvcc)
        self.members = {}
        for member in state.members:
            copy = internal_pb2.MemberInfo()
            copy.CopyFrom(member)
            self.members[member.id] = copy
        self.removed = set(state.removed_members)
        self.alarms = {(a.memberID, int(a.alarm)) for a in state.alarms}
        self.auth.load(state.auth.enabled, state.auth.revision, state.auth.users, state.auth.roles)
        if not self.auth.enabled:
            self.tokens.clear()  # as disabling does; tokens of an enabled store stay
        self.hub.resync(self.kv.revision, self.kv.compact_revision)
        if self.leases.is_primary:
            self.leases.promote([(lease.id, lease.ttl) for lease in self.kv.leases()], 0.0)


class StateEncoder:
    """The data of a Raft snapshot, encoded a slice of keys at a time (see
    :class:`~kvstore.storage.mvcc.SnapshotEncoder`); the member table and alarms are copied
    when it is made."""

    def __init__(self, state: internal_pb2.ServerState, kv: SnapshotEncoder) -> None:
        self._state = state
        self._kv = kv

    def encode(self, max_keys: int) -> bool:
        """Encode up to ``max_keys`` more keys; True once all are."""
        return self._kv.encode(max_keys)

    def finish(self) -> bytes:
        """The snapshot data (once :meth:`encode` returned True)."""
        self.close()
        return self.assemble()

    def close(self) -> None:
        """Release the state machine (idempotent): on the thread that applies."""
        self._kv.close()

    def assemble(self) -> bytes:
        """The snapshot data, after :meth:`close`; safe in a worker thread."""
        self._state.mvcc = self._kv.assemble()
        return self._state.SerializeToString()


def _hash(hashed_password: str) -> bytes:
    """The bcrypt hash a proposal carries (base64, as etcd puts it in the log)."""
    try:
        return base64.b64decode(hashed_password, validate=True)
    except (binascii.Error, ValueError):
        raise errors.NO_PASSWORD_USER from None


def member_pb(info: internal_pb2.MemberInfo) -> rpc_pb2.Member:
    """A member as the Cluster API shows it."""
    return rpc_pb2.Member(
        ID=info.id,
        name=info.name,
        peerURLs=list(info.peer_urls),
        clientURLs=list(info.client_urls),
        isLearner=info.is_learner,
    )
