"""The Auth API behind etcdserverpb.Auth, and who a request comes from.

Changes go through Raft (the proposing member hashes passwords with bcrypt first, so the
log never holds one in clear and applying stays deterministic); reads are served from
linearized local state with etcd's permission rules (root for lists, a user may read
itself and the roles it holds).
"""

from __future__ import annotations

import asyncio
import base64
from typing import TYPE_CHECKING, TypeVar

import bcrypt
from google.protobuf.message import Message as PbMessage

from kvstore.api.gen.etcdserverpb import rpc_pb2
from kvstore.api.gen.kvstorepb import internal_pb2
from kvstore.server import errors
from kvstore.server.auth_store import AuthInfo
from kvstore.server.identity import caller_or_anonymous
from kvstore.server.statemachine import StateMachine
from kvstore.server.tokens import token_index

if TYPE_CHECKING:
    from kvstore.server.etcd import EtcdServer

R = TypeVar("R", bound=PbMessage)

TOKEN_WAIT_S = 5.0
"""How long a simple token naming a Raft index not yet applied here may wait for it."""


def hash_password(password: str, cost: int) -> str:
    """A bcrypt hash of ``password`` (``$2a$``, as Go writes it), base64-encoded as etcd
    carries it in ``hashedPassword``."""
    raw = password.encode()
    if len(raw) > 72:
        raise errors.PASSWORD_TOO_LONG
    hashed = bcrypt.hashpw(raw, bcrypt.gensalt(rounds=cost, prefix=b"2a"))
    return base64.b64encode(hashed).decode()


def check_password(password: str, hashed: bytes) -> bool:
    """Whether ``password`` matches a stored bcrypt hash."""
    try:
        return bcrypt.checkpw(password.encode(), hashed)
    except ValueError:
        return False


class AuthApi:
    """etcd's Auth calls over one member's state and Raft node."""

    def __init__(self, server: EtcdServer, bcrypt_cost: int) -> None:
        self._s = server
        self._cost = bcrypt_cost

    @property
    def _sm(self) -> StateMachine:
        return self._s.sm

    # -- who is calling ------------------------------------------------------------------

    async def identify(self, token: str | None, common_name: str | None) -> AuthInfo | None:
        """The identity a call's credentials name (None when auth is off or none came).

        A token wins over a client certificate; a simple token names the Raft index it was
        issued at, and is looked up once this member has applied that far."""
        sm = self._sm
        if not sm.auth.enabled:
            return None
        if token:
            token = token.removeprefix("Bearer ")
            index = token_index(token)
            if index is not None and index > self._s.node.applied:
                try:
                    await self._s.node.wait_applied(index, TOKEN_WAIT_S)
                except errors.EtcdError:
                    raise errors.INVALID_AUTH_TOKEN from None
            info = sm.tokens.info(token, sm.auth.revision)
            if info is None:
                raise errors.INVALID_AUTH_TOKEN
            return info
        if common_name:
            return AuthInfo(common_name, sm.auth.revision)
        return None

    # -- changes through Raft ------------------------------------------------------------

    async def _propose(self, request: internal_pb2.InternalRequest, kind: type[R]) -> R:
        return await self._s.replicate(request, kind)

    async def auth_enable(self, req: rpc_pb2.AuthEnableRequest) -> rpc_pb2.AuthEnableResponse:
        """AuthEnable: needs user root with role root."""
        return await self._propose(
            internal_pb2.InternalRequest(auth_enable=req), rpc_pb2.AuthEnableResponse
        )

    async def auth_disable(self, req: rpc_pb2.AuthDisableRequest) -> rpc_pb2.AuthDisableResponse:
        """AuthDisable (root only)."""
        return await self._propose(
            internal_pb2.InternalRequest(auth_disable=req), rpc_pb2.AuthDisableResponse
        )

    async def authenticate(self, req: rpc_pb2.AuthenticateRequest) -> rpc_pb2.AuthenticateResponse:
        """Check the password here, then put the token's issue through Raft; retried if the
        auth state changed meanwhile (the checked password may be stale)."""
        await self._s.linearize()
        while True:
            checked = self._sm.auth.revision
            stored = self._sm.auth.password_hash(req.name)
            if not await asyncio.to_thread(check_password, req.password, stored):
                raise errors.AUTH_FAILED
            issue = internal_pb2.InternalAuthenticate(
                name=req.name, simple_token=self._sm.tokens.new_prefix()
            )
            resp = await self._propose(
                internal_pb2.InternalRequest(authenticate=issue), rpc_pb2.AuthenticateResponse
            )
            if checked == self._sm.auth.revision:
                return resp

    async def user_add(self, req: rpc_pb2.AuthUserAddRequest) -> rpc_pb2.AuthUserAddResponse:
        """UserAdd: the password is hashed here, before proposing."""
        add = rpc_pb2.AuthUserAddRequest()
        add.CopyFrom(req)
        add.password = ""
        if not req.options.no_password:
            add.hashedPassword = await asyncio.to_thread(hash_password, req.password, self._cost)
        else:
            add.hashedPassword = ""
        return await self._propose(
            internal_pb2.InternalRequest(auth_user_add=add), rpc_pb2.AuthUserAddResponse
        )

    async def user_delete(
        self, req: rpc_pb2.AuthUserDeleteRequest
    ) -> rpc_pb2.AuthUserDeleteResponse:
        """UserDelete."""
        return await self._propose(
            internal_pb2.InternalRequest(auth_user_delete=req), rpc_pb2.AuthUserDeleteResponse
        )

    async def user_change_password(
        self, req: rpc_pb2.AuthUserChangePasswordRequest
    ) -> rpc_pb2.AuthUserChangePasswordResponse:
        """UserChangePassword: hashed here; a client may send a hash of its own instead."""
        change = rpc_pb2.AuthUserChangePasswordRequest()
        change.CopyFrom(req)
        if req.password:
            change.hashedPassword = await asyncio.to_thread(hash_password, req.password, self._cost)
            change.password = ""
        return await self._propose(
            internal_pb2.InternalRequest(auth_user_change_password=change),
            rpc_pb2.AuthUserChangePasswordResponse,
        )

    async def user_grant_role(
        self, req: rpc_pb2.AuthUserGrantRoleRequest
    ) -> rpc_pb2.AuthUserGrantRoleResponse:
        """UserGrantRole."""
        return await self._propose(
            internal_pb2.InternalRequest(auth_user_grant_role=req),
            rpc_pb2.AuthUserGrantRoleResponse,
        )

    async def user_revoke_role(
        self, req: rpc_pb2.AuthUserRevokeRoleRequest
    ) -> rpc_pb2.AuthUserRevokeRoleResponse:
        """UserRevokeRole."""
        return await self._propose(
            internal_pb2.InternalRequest(auth_user_revoke_role=req),
            rpc_pb2.AuthUserRevokeRoleResponse,
        )

    async def role_add(self, req: rpc_pb2.AuthRoleAddRequest) -> rpc_pb2.AuthRoleAddResponse:
        """RoleAdd."""
        return await self._propose(
            internal_pb2.InternalRequest(auth_role_add=req), rpc_pb2.AuthRoleAddResponse
        )

    async def role_delete(
        self, req: rpc_pb2.AuthRoleDeleteRequest
    ) -> rpc_pb2.AuthRoleDeleteResponse:
        """RoleDelete."""
        return await self._propose(
            internal_pb2.InternalRequest(auth_role_delete=req), rpc_pb2.AuthRoleDeleteResponse
        )

    async def role_grant_permission(
        self, req: rpc_pb2.AuthRoleGrantPermissionRequest
    ) -> rpc_pb2.AuthRoleGrantPermissionResponse:
        """RoleGrantPermission."""
        return await self._propose(
            internal_pb2.InternalRequest(auth_role_grant_permission=req),
            rpc_pb2.AuthRoleGrantPermissionResponse,
        )

    async def role_revoke_permission(
        self, req: rpc_pb2.AuthRoleRevokePermissionRequest
    ) -> rpc_pb2.AuthRoleRevokePermissionResponse:
        """RoleRevokePermission."""
        return await self._propose(
            internal_pb2.InternalRequest(auth_role_revoke_permission=req),
            rpc_pb2.AuthRoleRevokePermissionResponse,
        )

    # -- reads from linearized local state -------------------------------------------------

    async def auth_status(self, req: rpc_pb2.AuthStatusRequest) -> rpc_pb2.AuthStatusResponse:
        """Whether auth is on, and the auth revision (root only)."""
        del req
        await self._s.linearize()
        auth = self._sm.auth
        auth.check_admin(caller_or_anonymous())
        return rpc_pb2.AuthStatusResponse(
            header=self._sm.header(), enabled=auth.enabled, authRevision=auth.revision
        )

    async def user_get(self, req: rpc_pb2.AuthUserGetRequest) -> rpc_pb2.AuthUserGetResponse:
        """A user's roles: root, or the user itself."""
        await self._s.linearize()
        who = caller_or_anonymous()
        auth = self._sm.auth
        if req.name != who.username:
            auth.check_admin(who)
        return rpc_pb2.AuthUserGetResponse(header=self._sm.header(), roles=auth.user_get(req.name))

    async def user_list(self, req: rpc_pb2.AuthUserListRequest) -> rpc_pb2.AuthUserListResponse:
        """Every user name (root only)."""
        del req
        await self._s.linearize()
        self._sm.auth.check_admin(caller_or_anonymous())
        return rpc_pb2.AuthUserListResponse(
            header=self._sm.header(), users=self._sm.auth.user_list()
        )

    async def role_get(self, req: rpc_pb2.AuthRoleGetRequest) -> rpc_pb2.AuthRoleGetResponse:
        """A role's permissions: root, or a user holding the role."""
        await self._s.linearize()
        who = caller_or_anonymous()
        auth = self._sm.auth
        if not auth.has_role(who.username, req.role):
            auth.check_admin(who)
        return rpc_pb2.AuthRoleGetResponse(header=self._sm.header(), perm=auth.role_get(req.role))

    async def role_list(self, req: rpc_pb2.AuthRoleListRequest) -> rpc_pb2.AuthRoleListResponse:
        """Every role name (root only)."""
        del req
        await self._s.linearize()
        self._sm.auth.check_admin(caller_or_anonymous())
        return rpc_pb2.AuthRoleListResponse(
            header=self._sm.header(), roles=self._sm.auth.role_list()
        )
