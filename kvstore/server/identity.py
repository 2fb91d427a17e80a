"""Who the call being served comes from, carried from the gRPC layer (which reads the
token or the client certificate) to the request logic for the duration of one call."""

from __future__ import annotations

from contextvars import ContextVar

from kvstore.server import errors
from kvstore.server.auth_store import AuthInfo, AuthStore

REQUEST_AUTH: ContextVar[AuthInfo | None] = ContextVar("kvstore_request_auth", default=None)
"""The identity of the call being served (None: no credentials came with it)."""


def caller() -> AuthInfo | None:
    """The identity of the call being served."""
    return REQUEST_AUTH.get()


def caller_or_anonymous() -> AuthInfo:
    """The caller, or the empty identity that permission checks refuse when auth is on."""
    return REQUEST_AUTH.get() or AuthInfo()


def require_caller(auth: AuthStore) -> None:
    """With auth enabled, refuse a call that came without credentials ("user name is
    empty"), as etcd does for leases, Status and listing alarms."""
    if auth.enabled and REQUEST_AUTH.get() is None:
        raise errors.USER_EMPTY
