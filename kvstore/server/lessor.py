"""Lease deadlines: when each lease expires, decided by the leader alone.

Which leases exist and which keys they hold is replicated state (the MVCC store keeps it and
changes it only when a Raft entry is applied). *When* a lease expires is not: only the
leader keeps deadlines, and when one passes the leader proposes the revocation, so the keys
go away on every member at one revision. A member that becomes leader starts every deadline
afresh from the lease's TTL plus an election timeout, so it never expires a lease whose
keep-alives went to the previous leader. Pure: the clock is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

MAX_LEASE_TTL = 9_000_000_000
"""The largest TTL a client may ask for, in seconds (etcd's limit)."""


class LeaseClock:
    """Deadlines of the leases of one member (empty unless it is the leader)."""

    def __init__(self, clock: Callable[[], float], min_ttl: int) -> None:
        self._clock = clock
        self.min_ttl = min_ttl
        self._deadlines: dict[int, float] = {}
        self._primary = False

    @property
    def is_primary(self) -> bool:
        """Whether this member keeps deadlines (it is the leader)."""
        return self._primary

    def effective_ttl(self, requested: int) -> int:
        """The TTL a grant gets: never below the minimum (1.5 election timeouts)."""
        return max(requested, self.min_ttl)

    def granted(self, lease_id: int, ttl: int) -> None:
        """A grant was applied: on the leader the deadline starts now."""
        if self._primary:
            self._deadlines[lease_id] = self._clock() + ttl

    def revoked(self, lease_id: int) -> None:
        """A revoke was applied."""
        self._deadlines.pop(lease_id, None)

    def renew(self, lease_id: int, ttl: int) -> None:
        """A keep-alive on the leader: a full TTL from now."""
        self._deadlines[lease_id] = self._clock() + ttl

    def remaining(self, lease_id: int, ttl: int) -> int:
        """Whole seconds left, rounded down as etcd reports them (a lease granted for 10 s
        shows 9 a moment later), on the leader; the full TTL where no deadline is kept."""
        deadline = self._deadlines.get(lease_id)
        if not self._primary or deadline is None:
            return ttl
        return max(0, math.floor(deadline - self._clock()))

    def promote(self, leases: Iterable[tuple[int, int]], extend: float) -> None:
        """This member became leader: every lease (id, ttl) gets ttl + ``extend`` from now."""
        self._primary = True
        now = self._clock()
        self._deadlines = {lease_id: now + ttl + extend for lease_id, ttl in leases}

    def demote(self) -> None:
        """This member lost leadership: deadlines belong to the new leader."""
        self._primary = False
        self._deadlines.clear()

    def expired(self) -> list[int]:
        """Ids of leases past their deadline (leader only; empty elsewhere)."""
        if not self._primary:
            return []
        now = self._clock()
        return sorted(i for i, deadline in self._deadlines.items() if deadline <= now)
