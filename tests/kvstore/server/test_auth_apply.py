"""Auth in the state machine: admin requests and writes checked at apply with the identity
the entry carries, tokens issued on apply, and the auth state in the Raft snapshot."""

from __future__ import annotations

import base64
import itertools
import time

import bcrypt

from kvstore.api.gen.authpb import auth_pb2
from kvstore.api.gen.etcdserverpb import rpc_pb2
from kvstore.api.gen.kvstorepb import internal_pb2
from kvstore.server import errors
from kvstore.server.lessor import LeaseClock
from kvstore.server.statemachine import ApplyResult, StateMachine
from kvstore.server.tokens import SimpleTokens

_HASH = base64.b64encode(bcrypt.hashpw(b"pw", bcrypt.gensalt(4))).decode()


class Applier:
    """A state machine fed entries at increasing indexes."""

    def __init__(self) -> None:
        self.sm = StateMachine(1, 2, lambda: 1, LeaseClock(time.monotonic, 2), SimpleTokens())
        self._index = itertools.count(1)

    def __call__(self, user: str = "", revision: int = -1, **request: object) -> ApplyResult:
        req = internal_pb2.InternalRequest(**request)  # type: ignore[arg-type]
        if user:
            req.auth.username = user
            req.auth.auth_revision = self.sm.auth.revision if revision < 0 else revision
        return self.sm.apply(req, next(self._index), 1)


def _setup(apply: Applier) -> None:
    for name in ("root", "alice"):
        assert (
            apply(auth_user_add=rpc_pb2.AuthUserAddRequest(name=name, hashedPassword=_HASH)).error
            is None
        )
    apply(auth_user_grant_role=rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"))
    apply(auth_role_add=rpc_pb2.AuthRoleAddRequest(name="app"))
    perm = auth_pb2.Permission(permType=auth_pb2.Permission.READWRITE, key=b"a/", range_end=b"a0")
    apply(auth_role_grant_permission=rpc_pb2.AuthRoleGrantPermissionRequest(name="app", perm=perm))
    apply(auth_user_grant_role=rpc_pb2.AuthUserGrantRoleRequest(user="alice", role="app"))
    assert apply(auth_enable=rpc_pb2.AuthEnableRequest()).error is None


def test_writes_are_checked_at_apply_with_the_entrys_identity() -> None:
    apply = Applier()
    _setup(apply)
    put_ok = rpc_pb2.PutRequest(key=b"a/x", value=b"1")
    put_out = rpc_pb2.PutRequest(key=b"b", value=b"1")
    assert apply("alice", put=put_ok).error is None
    assert apply("alice", put=put_out).error == errors.PERMISSION_DENIED
    assert apply(put=put_ok).error == errors.USER_EMPTY  # no identity with auth on
    assert apply("root", put=put_out).error is None
    stale = apply.sm.auth.revision
    # The permission is revoked after the write was checked but before it is applied.
    apply("root", auth_role_revoke_permission=rpc_pb2.AuthRoleRevokePermissionRequest(
        role="app", key=b"a/", range_end=b"a0"))  # fmt: skip
    assert apply("alice", stale, put=put_ok).error == errors.AUTH_OLD_REVISION
    assert apply("alice", put=put_ok).error == errors.PERMISSION_DENIED
    assert apply.sm.kv.revision == 3  # only the two permitted puts were written


def test_admin_requests_need_root_at_apply() -> None:
    apply = Applier()
    _setup(apply)
    role = rpc_pb2.AuthRoleAddRequest(name="more")
    assert apply("alice", auth_role_add=role).error == errors.PERMISSION_DENIED
    assert apply(auth_role_add=role).error == errors.USER_EMPTY
    assert apply("ghost", auth_role_add=role).error == errors.USER_NOT_FOUND
    assert apply("root", auth_role_add=role).error is None
    assert apply("root", auth_disable=rpc_pb2.AuthDisableRequest()).error is None
    assert apply(auth_role_delete=rpc_pb2.AuthRoleDeleteRequest(role="more")).error is None


def test_authenticate_issues_the_token_at_the_entrys_index_and_delete_drops_it() -> None:
    apply = Applier()
    _setup(apply)
    issue = internal_pb2.InternalAuthenticate(name="alice", simple_token="abcdefghijklmnop")
    result = apply(authenticate=issue)
    assert isinstance(result.response, rpc_pb2.AuthenticateResponse)
    token = result.response.token
    assert token.startswith("abcdefghijklmnop.")
    info = apply.sm.tokens.info(token, apply.sm.auth.revision)
    assert info is not None and info.username == "alice"
    apply("root", auth_user_delete=rpc_pb2.AuthUserDeleteRequest(name="alice"))
    assert apply.sm.tokens.info(token, apply.sm.auth.revision) is None
    missing = internal_pb2.InternalAuthenticate(name="alice", simple_token="x")
    assert apply(authenticate=missing).error == errors.AUTH_FAILED


def test_auth_state_is_in_the_snapshot() -> None:
    apply = Applier()
    _setup(apply)
    data = apply.sm.snapshot()
    other = Applier()
    other.sm.restore(data)
    assert other.sm.auth.snapshot() == apply.sm.auth.snapshot()
    assert other.sm.auth.enabled
    put_out = rpc_pb2.PutRequest(key=b"b", value=b"1")
    assert other("alice", put=put_out).error == errors.PERMISSION_DENIED
    assert bcrypt.checkpw(b"pw", other.sm.auth.password_hash("alice"))
