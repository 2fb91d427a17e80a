"""The errors the server reports, as etcd reports them.

etcd clients decide what to do from the gRPC status code *and* the exact message (clientv3
retries "etcdserver: leader changed", etcdctl prints the text), so every error here carries
the code and the message etcd uses. This module is the one place where store and Raft
errors are translated into them::

    EtcdError (code, message)
    └── one instance per condition below, raised by request validation, apply and the node
"""

from __future__ import annotations

import grpc


class EtcdError(Exception):
    """An error with the gRPC status code and message an etcd client expects."""

    def __init__(self, code: grpc.StatusCode, message: str, leader_hint: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.leader_hint = leader_hint
        """The leader this member knows of (0: none); sent as ``kvstore-leader`` trailing
        metadata, so the message itself stays exactly etcd's."""

    def with_leader(self, leader: int) -> EtcdError:
        """The same error carrying a leader hint."""
        return EtcdError(self.code, self.message, leader)

    def __str__(self) -> str:
        hint = f" (leader {self.leader_hint:x})" if self.leader_hint else ""
        return self.message + hint

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, EtcdError)
            and self.code == other.code
            and self.message == other.message
        )

    def __hash__(self) -> int:
        return hash((self.code, self.message))


_C = grpc.StatusCode

EMPTY_KEY = EtcdError(_C.INVALID_ARGUMENT, "etcdserver: key is not provided")
KEY_NOT_FOUND = EtcdError(_C.INVALID_ARGUMENT, "etcdserver: key not found")
VALUE_PROVIDED = EtcdError(_C.INVALID_ARGUMENT, "etcdserver: value is provided")
LEASE_PROVIDED = EtcdError(_C.INVALID_ARGUMENT, "etcdserver: lease is provided")
TOO_MANY_OPS = EtcdError(_C.INVALID_ARGUMENT, "etcdserver: too many operations in txn request")
DUPLICATE_KEY = EtcdError(_C.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request")
REQUEST_TOO_LARGE = EtcdError(_C.INVALID_ARGUMENT, "etcdserver: request is too large")
COMPACTED = EtcdError(_C.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted")
FUTURE_REV = EtcdError(_C.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision")
NO_SPACE = EtcdError(_C.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded")
LEASE_NOT_FOUND = EtcdError(_C.NOT_FOUND, "etcdserver: requested lease not found")
LEASE_EXIST = EtcdError(_C.FAILED_PRECONDITION, "etcdserver: lease already exists")
LEASE_TTL_TOO_LARGE = EtcdError(_C.OUT_OF_RANGE, "etcdserver: too large lease TTL")
MEMBER_EXIST = EtcdError(_C.FAILED_PRECONDITION, "etcdserver: member ID already exist")
PEER_URL_EXIST = EtcdError(_C.FAILED_PRECONDITION, "etcdserver: Peer URLs already exists")
MEMBER_BAD_URLS = EtcdError(_C.INVALID_ARGUMENT, "etcdserver: given member URLs are invalid")
MEMBER_NOT_FOUND = EtcdError(_C.NOT_FOUND, "etcdserver: member not found")
MEMBER_NOT_LEARNER = EtcdError(
    _C.FAILED_PRECONDITION, "etcdserver: can only promote a learner member"
)
LEARNER_NOT_READY = EtcdError(
    _C.FAILED_PRECONDITION,
    "etcdserver: can only promote a learner member which is in sync with leader",
)
NOT_ENOUGH_STARTED = EtcdError(
    _C.FAILED_PRECONDITION,
    "etcdserver: re-configuration failed due to not enough started members",
)
TOO_MANY_REQUESTS = EtcdError(_C.RESOURCE_EXHAUSTED, "etcdserver: too many requests")
NO_LEADER = EtcdError(_C.UNAVAILABLE, "etcdserver: no leader")
NOT_LEADER = EtcdError(_C.FAILED_PRECONDITION, "etcdserver: not leader")
LEADER_CHANGED = EtcdError(_C.UNAVAILABLE, "etcdserver: leader changed")
STOPPED = EtcdError(_C.UNAVAILABLE, "etcdserver: server stopped")
TIMEOUT = EtcdError(_C.UNAVAILABLE, "etcdserver: request timed out")
TIMEOUT_LEADER_FAIL = EtcdError(
    _C.UNAVAILABLE, "etcdserver: request timed out, possibly due to previous leader failure"
)
BAD_LEADER_TRANSFEREE = EtcdError(_C.FAILED_PRECONDITION, "etcdserver: bad leader transferee")
NOT_SUPPORTED_FOR_LEARNER = EtcdError(_C.UNAVAILABLE, "etcdserver: rpc not supported for learner")
INVALID_SORT = EtcdError(_C.INVALID_ARGUMENT, "etcdserver: invalid sort option")
ROOT_USER_NOT_EXIST = EtcdError(_C.FAILED_PRECONDITION, "etcdserver: root user does not exist")
ROOT_ROLE_NOT_EXIST = EtcdError(
    _C.FAILED_PRECONDITION, "etcdserver: root user does not have root role"
)
USER_ALREADY_EXIST = EtcdError(_C.FAILED_PRECONDITION, "etcdserver: user name already exists")
USER_EMPTY = EtcdError(_C.INVALID_ARGUMENT, "etcdserver: user name is empty")
USER_NOT_FOUND = EtcdError(_C.FAILED_PRECONDITION, "etcdserver: user name not found")
ROLE_ALREADY_EXIST = EtcdError(_C.FAILED_PRECONDITION, "etcdserver: role name already exists")
ROLE_NOT_FOUND = EtcdError(_C.FAILED_PRECONDITION, "etcdserver: role name not found")
ROLE_EMPTY = EtcdError(_C.INVALID_ARGUMENT, "etcdserver: role name is empty")
AUTH_FAILED = EtcdError(
    _C.INVALID_ARGUMENT, "etcdserver: authentication failed, invalid user ID or password"
)
PERMISSION_NOT_GIVEN = EtcdError(_C.INVALID_ARGUMENT, "etcdserver: permission not given")
PERMISSION_DENIED = EtcdError(_C.PERMISSION_DENIED, "etcdserver: permission denied")
ROLE_NOT_GRANTED = EtcdError(_C.FAILED_PRECONDITION, "etcdserver: role is not granted to the user")
PERMISSION_NOT_GRANTED = EtcdError(
    _C.FAILED_PRECONDITION, "etcdserver: permission is not granted to the role"
)
AUTH_NOT_ENABLED = EtcdError(_C.FAILED_PRECONDITION, "etcdserver: authentication is not enabled")
INVALID_AUTH_TOKEN = EtcdError(_C.UNAUTHENTICATED, "etcdserver: invalid auth token")
INVALID_AUTH_MGMT = EtcdError(_C.INVALID_ARGUMENT, "etcdserver: invalid auth management")
AUTH_OLD_REVISION = EtcdError(_C.INVALID_ARGUMENT, "etcdserver: revision of auth store is old")
NO_PASSWORD_USER = EtcdError(
    _C.UNKNOWN, "auth: authentication failed, password was given for no password user"
)
"""etcd has no gRPC error for this one: its clients see the auth package's own text."""
VERIFY_ONLY = EtcdError(_C.UNKNOWN, "auth: token signing attempted with verify-only key")
"""A member configured with a JWT public key only cannot issue tokens (etcd's text)."""
PASSWORD_TOO_LONG = EtcdError(_C.UNKNOWN, "bcrypt: password length exceeds 72 bytes")
"""bcrypt hashes at most 72 bytes; etcd passes Go's bcrypt error through unchanged."""
