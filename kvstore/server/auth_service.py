"""etcdserverpb.Auth as a gRPC servicer, and how a call's credentials are read: the
``token`` metadata (or ``authorization``, with or without ``Bearer``), else, with
--client-cert-auth, the common name of the verified client certificate.

A normal servicer class (methods named as in the proto), so anything that dispatches to
servicers by method name can serve it.
"""

from __future__ import annotations

from kvstore.api.gen.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvstore.server.auth_api import AuthApi
from kvstore.server.auth_store import AuthInfo
from kvstore.server.services import Ctx, Observer

_AUTH = "etcdserverpb.Auth"
TOKEN_KEYS = ("token", "authorization")
"""Metadata keys a token may come in, in the order etcd looks at them."""
GATEWAY_KEY = "grpcgateway-accept"
"""Set by etcd's HTTP gateway: its certificate's common name is the gateway's, not the
user's, so it is never taken as a user name."""


def call_token(context: Ctx) -> str | None:
    """The token a call carries, if any."""
    found = {key: value for key, value in (context.invocation_metadata() or ())}
    for key in TOKEN_KEYS:
        value = found.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def call_common_name(context: Ctx) -> str | None:
    """The common name of a verified client certificate (None over plain TCP, without a
    certificate, or through the HTTP gateway)."""
    metadata = {key for key, _ in (context.invocation_metadata() or ())}
    if GATEWAY_KEY in metadata:
        return None
    auth_context = getattr(context, "auth_context", None)
    if auth_context is None:
        return None
    names = auth_context().get("x509_common_name") or []
    return names[0].decode() if names else None


class CallIdentifier:
    """Turns a call's credentials into the identity its permissions are checked with."""

    def __init__(self, api: AuthApi, client_cert_auth: bool) -> None:
        self._api = api
        self._cert_auth = client_cert_auth

    async def __call__(self, context: Ctx) -> AuthInfo | None:
        """The caller (None without credentials); raises "invalid auth token"."""
        common_name = call_common_name(context) if self._cert_auth else None
        return await self._api.identify(call_token(context), common_name)


class AuthService(rpc_pb2_grpc.AuthServicer):
    """etcdserverpb.Auth."""

    def __init__(self, api: AuthApi, observer: Observer) -> None:
        self._a = api
        self._o = observer

    async def AuthEnable(
        self, request: rpc_pb2.AuthEnableRequest, context: Ctx
    ) -> rpc_pb2.AuthEnableResponse:
        """See :meth:`AuthApi.auth_enable`."""
        return await self._o.unary(
            _AUTH, "AuthEnable", context, lambda: self._a.auth_enable(request)
        )

    async def AuthDisable(
        self, request: rpc_pb2.AuthDisableRequest, context: Ctx
    ) -> rpc_pb2.AuthDisableResponse:
        """See :meth:`AuthApi.auth_disable`."""
        return await self._o.unary(
            _AUTH, "AuthDisable", context, lambda: self._a.auth_disable(request)
        )

    async def AuthStatus(
        self, request: rpc_pb2.AuthStatusRequest, context: Ctx
    ) -> rpc_pb2.AuthStatusResponse:
        """See :meth:`AuthApi.auth_status`."""
        return await self._o.unary(
            _AUTH, "AuthStatus", context, lambda: self._a.auth_status(request)
        )

    async def Authenticate(
        self, request: rpc_pb2.AuthenticateRequest, context: Ctx
    ) -> rpc_pb2.AuthenticateResponse:
        """See :meth:`AuthApi.authenticate` (credentials in the metadata are ignored)."""
        return await self._o.unary(
            _AUTH, "Authenticate", context, lambda: self._a.authenticate(request), identify=False
        )

    async def UserAdd(
        self, request: rpc_pb2.AuthUserAddRequest, context: Ctx
    ) -> rpc_pb2.AuthUserAddResponse:
        """See :meth:`AuthApi.user_add`."""
        return await self._o.unary(_AUTH, "UserAdd", context, lambda: self._a.user_add(request))

    async def UserGet(
        self, request: rpc_pb2.AuthUserGetRequest, context: Ctx
    ) -> rpc_pb2.AuthUserGetResponse:
        """See :meth:`AuthApi.user_get`."""
        return await self._o.unary(_AUTH, "UserGet", context, lambda: self._a.user_get(request))

    async def UserList(
        self, request: rpc_pb2.AuthUserListRequest, context: Ctx
    ) -> rpc_pb2.AuthUserListResponse:
        """See :meth:`AuthApi.user_list`."""
        return await self._o.unary(_AUTH, "UserList", context, lambda: self._a.user_list(request))

    async def UserDelete(
        self, request: rpc_pb2.AuthUserDeleteRequest, context: Ctx
    ) -> rpc_pb2.AuthUserDeleteResponse:
        """See :meth:`AuthApi.user_delete`."""
        return await self._o.unary(
            _AUTH, "UserDelete", context, lambda: self._a.user_delete(request)
        )

    async def UserChangePassword(
        self, request: rpc_pb2.AuthUserChangePasswordRequest, context: Ctx
    ) -> rpc_pb2.AuthUserChangePasswordResponse:
        """See :meth:`AuthApi.user_change_password`."""
        return await self._o.unary(
            _AUTH, "UserChangePassword", context, lambda: self._a.user_change_password(request)
        )

    async def UserGrantRole(
        self, request: rpc_pb2.AuthUserGrantRoleRequest, context: Ctx
    ) -> rpc_pb2.AuthUserGrantRoleResponse:
        """See :meth:`AuthApi.user_grant_role`."""
        return await self._o.unary(
            _AUTH, "UserGrantRole", context, lambda: self._a.user_grant_role(request)
        )

    async def UserRevokeRole(
        self, request: rpc_pb2.AuthUserRevokeRoleRequest, context: Ctx
    ) -> rpc_pb2.AuthUserRevokeRoleResponse:
        """See :meth:`AuthApi.user_revoke_role`."""
        return await self._o.unary(
            _AUTH, "UserRevokeRole", context, lambda: self._a.user_revoke_role(request)
        )

    async def RoleAdd(
        self, request: rpc_pb2.AuthRoleAddRequest, context: Ctx
    ) -> rpc_pb2.AuthRoleAddResponse:
        """See :meth:`AuthApi.role_add`."""
        return await self._o.unary(_AUTH, "RoleAdd", context, lambda: self._a.role_add(request))

    async def RoleGet(
        self, request: rpc_pb2.AuthRoleGetRequest, context: Ctx
    ) -> rpc_pb2.AuthRoleGetResponse:
        """See :meth:`AuthApi.role_get`."""
        return await self._o.unary(_AUTH, "RoleGet", context, lambda: self._a.role_get(request))

    async def RoleList(
        self, request: rpc_pb2.AuthRoleListRequest, context: Ctx
    ) -> rpc_pb2.AuthRoleListResponse:
        """See :meth:`AuthApi.role_list`."""
        return await self._o.unary(_AUTH, "RoleList", context, lambda: self._a.role_list(request))

    async def RoleDelete(
        self, request: rpc_pb2.AuthRoleDeleteRequest, context: Ctx
    ) -> rpc_pb2.AuthRoleDeleteResponse:
        """See :meth:`AuthApi.role_delete`."""
        return await self._o.unary(
            _AUTH, "RoleDelete", context, lambda: self._a.role_delete(request)
        )

    async def RoleGrantPermission(
        self, request: rpc_pb2.AuthRoleGrantPermissionRequest, context: Ctx
    ) -> rpc_pb2.AuthRoleGrantPermissionResponse:
        """See :meth:`AuthApi.role_grant_permission`."""
        return await self._o.unary(
            _AUTH, "RoleGrantPermission", context, lambda: self._a.role_grant_permission(request)
        )

    async def RoleRevokePermission(
        self, request: rpc_pb2.AuthRoleRevokePermissionRequest, context: Ctx
    ) -> rpc_pb2.AuthRoleRevokePermissionResponse:
        """See :meth:`AuthApi.role_revoke_permission`."""
        return await self._o.unary(
            _AUTH, "RoleRevokePermission", context, lambda: self._a.role_revoke_permission(request)
        )
