"""The replicated auth state (users, roles, the enabled flag, the auth revision) and etcd's
rules over it, with no I/O: the state machine applies auth requests here, and every
permission check of the API asks it.

Passwords arrive already hashed (the proposing member runs bcrypt before proposing), so
applying is deterministic. Every successful change bumps the auth revision by one, as in
etcd; a request stamped with an older revision than the store's is refused at apply time
with "revision of auth store is old", so a permission revoked between the API-layer check
and the apply is honoured.

Permission ranges follow etcd's key-range convention (see :mod:`kvstore.server.keyrange`):
an empty ``range_end`` is the single key, ``b"\\0"`` is every key from ``key`` on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from kvstore.api.gen.authpb import auth_pb2
from kvstore.api.gen.etcdserverpb import rpc_pb2
from kvstore.server import errors

ROOT_USER = "root"
ROOT_ROLE = "root"

READ = auth_pb2.Permission.READ
WRITE = auth_pb2.Permission.WRITE
READWRITE = auth_pb2.Permission.READWRITE

INFINITY = None
"""The open end of a range: greater than every key."""

Interval = tuple[bytes, bytes | None]
"""A half-open key interval [begin, end); end None is unbounded."""


@dataclass(frozen=True, slots=True)
class AuthInfo:
    """Who sends a request: the user name and the auth revision its credentials were
    checked at (0 when no credentials came with the request)."""

    username: str = ""
    revision: int = 0


@dataclass(frozen=True, slots=True)
class AuthSnapshot:
    """The whole auth state at one moment, as etcd keeps it in its ``auth``,
    ``authUsers`` and ``authRoles`` buckets (password hashes are raw bcrypt bytes). The
    defaults are a store where auth was never used."""

    enabled: bool = False
    revision: int = 1
    users: tuple[auth_pb2.User, ...] = ()
    roles: tuple[auth_pb2.Role, ...] = ()


LeaseKeys = Callable[[int], Sequence[bytes]]
"""The keys attached to a lease (empty if the lease does not exist)."""


def perm_interval(key: bytes, range_end: bytes) -> Interval:
    """The keys a permission (or a request) names, as an interval."""
    if not range_end:
        return key, key + b"\0"
    if range_end == b"\0":
        return key, INFINITY
    return key, range_end


def valid_permission_range(key: bytes, range_end: bytes) -> bool:
    """etcd accepts a single key, ``[key, range_end)`` with key < range_end, or an
    open-ended ``[key, \\0)``."""
    if not key:
        return False
    return not range_end or range_end == b"\0" or key < range_end


def _covers(intervals: Iterable[Interval], want: Interval) -> bool:
    """Whether the union of ``intervals`` covers the whole of ``want``."""
    begin, end = want
    if end is not INFINITY and end <= begin:
        return False  # an empty range overlaps no permission: denied, as in etcd
    reach = begin
    for ib, ie in sorted(intervals, key=lambda i: i[0]):
        if ie is not INFINITY and ie <= reach:
            continue
        if ib > reach:
            return False
        if ie is INFINITY:
            return True
        reach = ie
        if end is not INFINITY and reach >= end:
            return True
    return False


def _permits(perm_type: int, wanted: int) -> bool:
    return perm_type in (READWRITE, wanted)


def _copy_user(user: auth_pb2.User) -> auth_pb2.User:
    out = auth_pb2.User()
    out.CopyFrom(user)
    return out


def _copy_role(role: auth_pb2.Role) -> auth_pb2.Role:
    out = auth_pb2.Role()
    out.CopyFrom(role)
    return out


class AuthStore:
    """Users, roles, the enabled flag and the auth revision of one member's state."""

    def __init__(self) -> None:
        self.enabled = False
        self.revision = 1
        """etcd's auth store commits revision 1 when it is created."""
        self._users: dict[str, auth_pb2.User] = {}
        self._roles: dict[str, auth_pb2.Role] = {}
        self._perm_cache: dict[str, tuple[list[Interval], list[Interval]]] = {}

    # -- typed accessors (snapshots, etcd-format exports) ---------------------------------

    def users(self) -> list[auth_pb2.User]:
        """Every user, by name (copies: changing them changes nothing here)."""
        return [_copy_user(self._users[name]) for name in sorted(self._users)]

    def roles(self) -> list[auth_pb2.Role]:
        """Every role, by name (copies)."""
        return [_copy_role(self._roles[name]) for name in sorted(self._roles)]

    def snapshot(self) -> AuthSnapshot:
        """A copy of the whole state (for Raft snapshots and etcd-format exports)."""
        return AuthSnapshot(self.enabled, self.revision, tuple(self.users()), tuple(self.roles()))

    def user(self, name: str) -> auth_pb2.User | None:
        """One user (the stored message: do not change it), or None."""
        return self._users.get(name)

    def load(
        self,
        enabled: bool,
        revision: int,
        users: Iterable[auth_pb2.User],
        roles: Iterable[auth_pb2.Role],
    ) -> None:
        """Replace the whole state (a snapshot being installed)."""
        self.enabled = enabled
        self.revision = max(1, revision)
        self._users = {u.name.decode(): _copy_user(u) for u in users}
        self._roles = {r.name.decode(): _copy_role(r) for r in roles}
        self._refresh()

    # -- changes (applied from the Raft log) ------------------------------------------------

    def _commit(self) -> None:
        self.revision += 1
        self._refresh()

    def _refresh(self) -> None:
        """Rebuild every user's merged read and write intervals (as etcd's range
        permission cache does after each change)."""
        cache: dict[str, tuple[list[Interval], list[Interval]]] = {}
        for name, user in self._users.items():
            reads: list[Interval] = []
            writes: list[Interval] = []
            for role_name in user.roles:
                role = self._roles.get(role_name)
                if role is None:
                    continue
                for perm in role.keyPermission:
                    interval = perm_interval(perm.key, perm.range_end)
                    if _permits(perm.permType, READ):
                        reads.append(interval)
                    if _permits(perm.permType, WRITE):
                        writes.append(interval)
            cache[name] = (reads, writes)
        self._perm_cache = cache

    def enable(self) -> None:
        """Turn authentication on: needs user ``root`` holding role ``root``. Enabling an
        enabled store does nothing (and does not bump the revision)."""
        if self.enabled:
            return
        root = self._users.get(ROOT_USER)
        if root is None:
            raise errors.ROOT_USER_NOT_EXIST
        if ROOT_ROLE not in root.roles:
            raise errors.ROOT_ROLE_NOT_EXIST
        self.enabled = True
        self._refresh()

    def disable(self) -> None:
        """Turn authentication off (a no-op when it is off)."""
        if not self.enabled:
            return
        self.enabled = False
        self._commit()

    def user_add(self, name: str, password_hash: bytes, no_password: bool) -> None:
        """Add a user; ``password_hash`` is the bcrypt hash (empty with ``no_password``)."""
        if not name:
            raise errors.USER_EMPTY
        if name in self._users:
            raise errors.USER_ALREADY_EXIST
        user = auth_pb2.User(name=name.encode(), password=b"" if no_password else password_hash)
        user.options.no_password = no_password
        self._users[name] = user
        self._commit()

    def user_delete(self, name: str) -> None:
        """Delete a user; ``root`` cannot be deleted while auth is enabled."""
        if self.enabled and name == ROOT_USER:
            raise errors.INVALID_AUTH_MGMT
        if name not in self._users:
            raise errors.USER_NOT_FOUND
        del self._users[name]
        self._commit()

    def user_change_password(self, name: str, password_hash: bytes) -> None:
        """Replace a user's password hash (a no-password user keeps none)."""
        user = self._users.get(name)
        if user is None:
            raise errors.USER_NOT_FOUND
        user.password = b"" if user.options.no_password else password_hash
        self._commit()

    def user_grant_role(self, name: str, role: str) -> None:
        """Grant a role (``root`` need not exist as a role); granting it again is a no-op."""
        user = self._users.get(name)
        if user is None:
            raise errors.USER_NOT_FOUND
        if role != ROOT_ROLE and role not in self._roles:
            raise errors.ROLE_NOT_FOUND
        if role in user.roles:
            return
        roles = sorted([*user.roles, role])
        del user.roles[:]
        user.roles.extend(roles)
        self._commit()

    def user_revoke_role(self, name: str, role: str) -> None:
        """Revoke a role; root keeps role root while auth is enabled."""
        if self.enabled and name == ROOT_USER and role == ROOT_ROLE:
            raise errors.INVALID_AUTH_MGMT
        user = self._users.get(name)
        if user is None:
            raise errors.USER_NOT_FOUND
        if role not in user.roles:
            raise errors.ROLE_NOT_GRANTED
        kept = [r for r in user.roles if r != role]
        del user.roles[:]
        user.roles.extend(kept)
        self._commit()

    def role_add(self, name: str) -> None:
        """Add a role with no permissions."""
        if not name:
            raise errors.ROLE_EMPTY
        if name in self._roles:
            raise errors.ROLE_ALREADY_EXIST
        self._roles[name] = auth_pb2.Role(name=name.encode())
        self._commit()

    def role_delete(self, name: str) -> None:
        """Delete a role and revoke it from every user; role root stays while auth is
        enabled."""
        if self.enabled and name == ROOT_ROLE:
            raise errors.INVALID_AUTH_MGMT
        if name not in self._roles:
            raise errors.ROLE_NOT_FOUND
        del self._roles[name]
        for user in self._users.values():
            if name in user.roles:
                kept = [r for r in user.roles if r != name]
                del user.roles[:]
                user.roles.extend(kept)
        self._commit()

    def role_grant_permission(self, name: str, perm: auth_pb2.Permission | None) -> None:
        """Grant (or change the type of) a permission on a key or range."""
        if perm is None:
            raise errors.PERMISSION_NOT_GIVEN
        if not valid_permission_range(perm.key, perm.range_end):
            raise errors.INVALID_AUTH_MGMT
        if perm.permType not in (READ, WRITE, READWRITE):
            raise errors.INVALID_AUTH_MGMT
        role = self._roles.get(name)
        if role is None:
            raise errors.ROLE_NOT_FOUND
        for existing in role.keyPermission:
            if existing.key == perm.key and existing.range_end == perm.range_end:
                existing.permType = perm.permType
                break
        else:
            perms = [*role.keyPermission, perm]
            order = sorted(range(len(perms)), key=lambda i: perms[i].key)
            sorted_perms = [auth_pb2.Permission() for _ in perms]
            for slot, i in zip(sorted_perms, order, strict=True):
                slot.CopyFrom(perms[i])
            del role.keyPermission[:]
            role.keyPermission.extend(sorted_perms)
        self._commit()

    def role_revoke_permission(self, name: str, key: bytes, range_end: bytes) -> None:
        """Revoke the permission granted on exactly ``key`` and ``range_end``."""
        role = self._roles.get(name)
        if role is None:
            raise errors.ROLE_NOT_FOUND
        kept = [p for p in role.keyPermission if (p.key, p.range_end) != (key, range_end)]
        if len(kept) == len(role.keyPermission):
            raise errors.PERMISSION_NOT_GRANTED
        copies = [auth_pb2.Permission() for _ in kept]
        for slot, perm in zip(copies, kept, strict=True):
            slot.CopyFrom(perm)
        del role.keyPermission[:]
        role.keyPermission.extend(copies)
        self._commit()

    # -- reads -------------------------------------------------------------------------------

    def user_get(self, name: str) -> list[str]:
        """A user's roles."""
        user = self._users.get(name)
        if user is None:
            raise errors.USER_NOT_FOUND
        return list(user.roles)

    def user_list(self) -> list[str]:
        """Every user name, sorted (bbolt's key order, as etcd lists them)."""
        return sorted(self._users, key=str.encode)

    def role_get(self, name: str) -> list[auth_pb2.Permission]:
        """A role's permissions, by key."""
        role = self._roles.get(name)
        if role is None:
            raise errors.ROLE_NOT_FOUND
        return [_copy_perm(p) for p in role.keyPermission]

    def role_list(self) -> list[str]:
        """Every role name, sorted."""
        return sorted(self._roles, key=str.encode)

    def has_role(self, user: str, role: str) -> bool:
        """Whether ``user`` exists and holds ``role``."""
        found = self._users.get(user)
        return found is not None and role in found.roles

    def authenticate_user(self, name: str) -> None:
        """The checks Authenticate makes at apply (the password was checked before)."""
        if not self.enabled:
            raise errors.AUTH_NOT_ENABLED
        user = self._users.get(name)
        if user is None or user.options.no_password:
            raise errors.AUTH_FAILED

    def password_hash(self, name: str) -> bytes:
        """The stored hash to check a password against (AuthNotEnabled, AuthFailed for an
        unknown user, the no-password error for a user without one)."""
        if not self.enabled:
            raise errors.AUTH_NOT_ENABLED
        user = self._users.get(name)
        if user is None:
            raise errors.AUTH_FAILED
        if user.options.no_password:
            raise errors.NO_PASSWORD_USER
        return user.password

    # -- permission checks -------------------------------------------------------------------

    def check_admin(self, info: AuthInfo) -> None:
        """Root only (everyone when auth is off)."""
        if not self.enabled:
            return
        if not info.username:
            raise errors.USER_EMPTY
        user = self._users.get(info.username)
        if user is None:
            raise errors.USER_NOT_FOUND
        if ROOT_ROLE not in user.roles:
            raise errors.PERMISSION_DENIED

    def is_admin(self, info: AuthInfo) -> bool:
        """Whether :meth:`check_admin` passes."""
        try:
            self.check_admin(info)
        except errors.EtcdError:
            return False
        return True

    def _check(self, info: AuthInfo, key: bytes, range_end: bytes, wanted: int) -> None:
        if not self.enabled:
            return
        if info.revision == 0:
            raise errors.USER_EMPTY
        if info.revision < self.revision:
            raise errors.AUTH_OLD_REVISION
        user = self._users.get(info.username)
        if user is None:
            raise errors.PERMISSION_DENIED
        if ROOT_ROLE in user.roles:
            return
        reads, writes = self._perm_cache.get(info.username, ([], []))
        granted = reads if wanted == READ else writes
        if not range_end:
            if any(_contains(interval, key) for interval in granted):
                return
        elif _covers(granted, perm_interval(key, range_end)):
            return
        raise errors.PERMISSION_DENIED

    def check_range(self, info: AuthInfo, key: bytes, range_end: bytes) -> None:
        """Read permission on ``key`` (or the range up to ``range_end``)."""
        self._check(info, key, range_end, READ)

    def check_put(self, info: AuthInfo, key: bytes) -> None:
        """Write permission on one key."""
        self._check(info, key, b"", WRITE)

    def check_delete(self, info: AuthInfo, key: bytes, range_end: bytes) -> None:
        """Write permission on the deleted range."""
        self._check(info, key, range_end, WRITE)

    def check_lease_keys(self, info: AuthInfo, keys: Sequence[bytes]) -> None:
        """Write permission on every key attached to a lease (revoking it deletes them);
        root passes without looking."""
        if not keys or self.is_admin(info):
            return
        for key in keys:
            self.check_put(info, key)

    def check_put_request(
        self, info: AuthInfo, req: rpc_pb2.PutRequest, lease_keys: LeaseKeys
    ) -> None:
        """A Put: write on the key, write on the lease's keys, read for ``prev_kv``."""
        self.check_put(info, req.key)
        if req.lease:
            self.check_lease_keys(info, lease_keys(req.lease))
        if req.prev_kv:
            self.check_range(info, req.key, b"")

    def check_delete_request(self, info: AuthInfo, req: rpc_pb2.DeleteRangeRequest) -> None:
        """A DeleteRange: write on the range, read on it too for ``prev_kv``."""
        self.check_delete(info, req.key, req.range_end)
        if req.prev_kv:
            self.check_range(info, req.key, req.range_end)

    def check_txn(self, info: AuthInfo, req: rpc_pb2.TxnRequest, lease_keys: LeaseKeys) -> None:
        """Every compare (read) and every op of both branches, nested txns included."""
        for compare in req.compare:
            self.check_range(info, compare.key, compare.range_end)
        for op in [*req.success, *req.failure]:
            kind = op.WhichOneof("request")
            if kind == "request_range":
                self.check_range(info, op.request_range.key, op.request_range.range_end)
            elif kind == "request_put":
                self.check_put_request(info, op.request_put, lease_keys)
            elif kind == "request_delete_range":
                self.check_delete_request(info, op.request_delete_range)
            elif kind == "request_txn":
                self.check_txn(info, op.request_txn, lease_keys)


def _contains(interval: Interval, key: bytes) -> bool:
    begin, end = interval
    return begin <= key and (end is INFINITY or key < end)


def _copy_perm(perm: auth_pb2.Permission) -> auth_pb2.Permission:
    out = auth_pb2.Permission()
    out.CopyFrom(perm)
    return out
