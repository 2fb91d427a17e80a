"""Leases: which exist, which keys they hold, and (on the leader only) when they expire.

The replicated part (grant, revoke, attach, checkpointed remaining TTL) changes only when a
Raft entry is applied, so every member agrees on it. Expiry is a leader-local clock: only
the leader has deadlines, and when a lease runs out the leader *proposes* its revocation, so
the keys go away on every member at one revision. A member that becomes leader starts every
deadline afresh from the remaining TTL (plus the election timeout) instead of expiring
leases whose keep-alives went to the previous leader. Pure: the clock is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

MAX_LEASE_TTL = 9_000_000_000
"""The largest TTL a client may ask for, in seconds (etcd's limit)."""

FOREVER = math.inf


@dataclass(slots=True)
class Lease:
    """One lease. ``deadline`` is a monotonic time, meaningful only on the leader."""

    id: int
    ttl: int
    remaining_ttl: int = 0
    keys: set[bytes] = field(default_factory=set)
    deadline: float = FOREVER


class Lessor:
    """The lease table of one member."""

    def __init__(self, clock: Callable[[], float], min_ttl: int) -> None:
        self._clock = clock
        self._min_ttl = min_ttl
        self._leases: dict[int, Lease] = {}
        self._primary = False

    @property
    def is_primary(self) -> bool:
        """Whether this member keeps deadlines (it is the leader)."""
        return self._primary

    def effective_ttl(self, requested: int) -> int:
        """The TTL a grant gets: never below the minimum (1.5 election timeouts)."""
        return max(requested, self._min_ttl)

    # -- replicated changes (called from apply) ---------------------------------------

    def grant(self, lease_id: int, ttl: int) -> Lease:
        """Create a lease; its deadline starts now on the leader."""
        lease = Lease(id=lease_id, ttl=self.effective_ttl(ttl))
        if self._primary:
            lease.deadline = self._clock() + lease.ttl
        self._leases[lease_id] = lease
        return lease

    def revoke(self, lease_id: int) -> set[bytes]:
        """Forget a lease and return the keys it held (the caller deletes them)."""
        lease = self._leases.pop(lease_id, None)
        return set() if lease is None else lease.keys

    def attach(self, lease_id: int, key: bytes) -> None:
        """Record that ``key`` is held by ``lease_id`` (0 = no lease)."""
        if lease_id and lease_id in self._leases:
            self._leases[lease_id].keys.add(key)

    def detach(self, lease_id: int, key: bytes) -> None:
        """Record that ``key`` no longer belongs to ``lease_id``."""
        lease = self._leases.get(lease_id)
        if lease is not None:
            lease.keys.discard(key)

    def checkpoint(self, lease_id: int, remaining_ttl: int) -> None:
        """Persist how much TTL was left, so a new leader does not start from full TTL."""
        lease = self._leases.get(lease_id)
        if lease is not None:
            lease.remaining_ttl = remaining_ttl

    # -- queries ------------------------------------------------------------------------

    def get(self, lease_id: int) -> Lease | None:
        """The lease, or None."""
        return self._leases.get(lease_id)

    def __contains__(self, lease_id: object) -> bool:
        return lease_id in self._leases

    def leases(self) -> list[Lease]:
        """All leases, by id."""
        return [self._leases[i] for i in sorted(self._leases)]

    def remaining(self, lease_id: int) -> int:
        """Seconds left (leader), or the checkpointed/granted TTL elsewhere."""
        lease = self._leases[lease_id]
        if self._primary and lease.deadline != FOREVER:
            return max(0, math.ceil(lease.deadline - self._clock()))
        return lease.remaining_ttl or lease.ttl

    # -- leader-only timing ---------------------------------------------------------------

    def renew(self, lease_id: int) -> int:
        """A keep-alive: reset the deadline to a full TTL and return it."""
        lease = self._leases[lease_id]
        lease.deadline = self._clock() + lease.ttl
        lease.remaining_ttl = 0
        return lease.ttl

    def promote(self, extend: float) -> None:
        """This member became leader: start deadlines from the remaining TTL plus ``extend``."""
        self._primary = True
        now = self._clock()
        for lease in self._leases.values():
            lease.deadline = now + (lease.remaining_ttl or lease.ttl) + extend

    def demote(self) -> None:
        """This member lost leadership: deadlines belong to the new leader."""
        self._primary = False
        for lease in self._leases.values():
            lease.deadline = FOREVER

    def expired(self) -> list[int]:
        """Ids of leases past their deadline (leader only; empty elsewhere)."""
        if not self._primary:
            return []
        now = self._clock()
        return sorted(i for i, lease in self._leases.items() if lease.deadline <= now)

    def restore(self, records: Iterable[tuple[int, int, int]], keys: dict[int, set[bytes]]) -> None:
        """Replace the table from a snapshot: (id, ttl, remaining_ttl) and keys per lease."""
        self._leases = {}
        for lease_id, ttl, remaining in records:
            lease = Lease(id=lease_id, ttl=ttl, remaining_ttl=remaining)
            lease.keys = set(keys.get(lease_id, set()))
            self._leases[lease_id] = lease
        if self._primary:
            self.promote(0.0)
