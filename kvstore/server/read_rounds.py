"""Which ReadIndex round each waiting linearizable read depends on, with deadlines in ticks.

A member batches its linearizable reads: one ReadIndex round (a context handed to the Raft
core, answered by a ``ReadState``) serves every read that arrived before it was sent, and
one round is *live* (in flight) at a time, so under load a round serves many reads. This
module holds that bookkeeping and nothing else: no clock, no futures, no core. The driver
(:class:`kvstore.server.node.Node`) calls it from its Raft loop.

Why the rounds, not the readers, own the retries: a round's messages can be lost (dropped,
sent to a member that restarts, answered by a member paused past the round, discarded by a
leader that stepped down), and then no answer ever comes. If only a waiting reader could
notice and retry, a round whose readers all went away first (gRPC cancels a handler when
the client's deadline passes) stayed "in flight" forever and every later read waited
behind it. Here every round has a deadline of ``round_ticks`` Raft ticks; once it passes,
the round stops being live and a new one (fresh context) is sent for everyone still
waiting. A reader that leaves is simply forgotten, and nothing waits on its round.

An expired round is still remembered: its answer may yet come (a slow leader), and it is
valid for every reader that joined before that round was sent, so a slow cluster still
serves reads even when every round takes longer than the deadline.

Correctness: a reader is served only by the answer of a round sent after it joined (its
``first`` round or a later one), so the index it gets is at least the commit index at the
moment it started, which is what linearizability needs (thesis §6.4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["DEFAULT_ROUND_TICKS", "ReadRounds", "round_ticks_for"]

W = TypeVar("W")

DEFAULT_ROUND_TICKS = 5
"""Ticks a round may stay unanswered before it is retried (500 ms at the default 100 ms
tick, the interval etcd's read loop retries at)."""


def round_ticks_for(election_ticks: int) -> int:
    """The round deadline for an election timeout of ``election_ticks``: half of it (at
    least 2 ticks, so a round sent just before a tick gets a whole tick to be answered).
    Shorter than an election timeout, so a round lost to a leader that died is retried
    about when a new leader can be known."""
    return max(2, election_ticks // 2)


@dataclass(slots=True)
class _Waiter:
    joined: float
    """When the read started (the driver's clock; only reported as an age)."""
    first: int | None = None
    """Sequence number of the first round sent after the read joined, or None while it
    waits for one."""


@dataclass(slots=True)
class _Round:
    seq: int
    ticks_left: int


class ReadRounds(Generic[W]):
    """Reads waiting for a ReadIndex answer, and the rounds sent for them.

    ``W`` is whatever identifies a waiting read to the driver (a future); it must be
    hashable and is never looked into.
    """

    __slots__ = ("_backoff", "_live", "_next_seq", "_round_ticks", "_rounds", "_waiters")

    def __init__(self, round_ticks: int = DEFAULT_ROUND_TICKS) -> None:
        if round_ticks < 1:
            raise ValueError("round_ticks must be at least 1")
        self._round_ticks = round_ticks
        self._waiters: dict[W, _Waiter] = {}
        self._rounds: dict[bytes, _Round] = {}
        """Rounds sent and not answered, oldest first: the live one and expired ones
        whose late answer would still serve someone."""
        self._live: bytes | None = None
        self._next_seq = 0
        self._backoff = False
        """A round could not be sent (no leader known): wait for the next tick before
        trying again, rather than spinning."""

    # -- readers -----------------------------------------------------------------------

    def join(self, waiter: W, now: float) -> None:
        """A read starts waiting; it is covered by the next round sent."""
        self._waiters[waiter] = _Waiter(now)

    def leave(self, waiter: W) -> None:
        """A read stops waiting (served, failed, timed out or cancelled)."""
        self._waiters.pop(waiter, None)
        self._forget_useless_rounds()

    # -- rounds --------------------------------------------------------------------------

    def due(self) -> bool:
        """Whether a round should be sent now: someone waits and no round is live."""
        return bool(self._waiters) and self._live is None and not self._backoff

    def sent(self, ctx: bytes) -> None:
        """A round tagged ``ctx`` (unique) was handed to the core; it covers every read
        not yet covered, and the reads whose rounds expired keep their older cover too."""
        if ctx in self._rounds:
            raise ValueError("a ReadIndex context may be used once")
        seq = self._next_seq
        self._next_seq += 1
        self._rounds[ctx] = _Round(seq, self._round_ticks)
        self._live = ctx
        for w in self._waiters.values():
            if w.first is None:
                w.first = seq

    def unsent(self, ctx: bytes) -> None:
        """The core refused the round (no leader known): its reads wait for the next
        round, which is tried at the next tick."""
        rnd = self._rounds.pop(ctx, None)
        if rnd is None:
            return
        if self._live == ctx:
            self._live = None
        for w in self._waiters.values():
            if w.first == rnd.seq:
                w.first = None
        self._backoff = True

    def answered(self, ctx: bytes) -> list[W]:
        """The answer to round ``ctx`` arrived: the reads it serves (every read covered by
        it or by an earlier round), removed from the waiting set. An unknown or forgotten
        context serves nobody."""
        rnd = self._rounds.get(ctx)
        if rnd is None:
            return []
        served = [k for k, w in self._waiters.items() if w.first is not None and w.first <= rnd.seq]
        for k in served:
            del self._waiters[k]
        for c in [c for c, r in self._rounds.items() if r.seq <= rnd.seq]:
            del self._rounds[c]
            if self._live == c:
                self._live = None
        return served

    def tick(self) -> None:
        """One Raft tick passed: the live round's deadline comes nearer; once it passes the
        round is no longer live, so the next :meth:`due` asks for a retry."""
        self._backoff = False
        if self._live is None:
            return
        rnd = self._rounds[self._live]
        rnd.ticks_left -= 1
        if rnd.ticks_left <= 0:
            self._live = None
            self._forget_useless_rounds()

    def clear(self) -> list[W]:
        """Forget everything (the member stops); returns the reads that were waiting."""
        waiting = list(self._waiters)
        self._waiters.clear()
        self._rounds.clear()
        self._live = None
        return waiting

    # -- reporting -------------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        """How many reads wait for a ReadIndex answer."""
        return len(self._waiters)

    def oldest_age(self, now: float) -> float:
        """Seconds the longest-waiting read has waited (0 when none waits)."""
        if not self._waiters:
            return 0.0
        return max(0.0, now - min(w.joined for w in self._waiters.values()))

    @property
    def live(self) -> bytes | None:
        """The context of the round in flight, if any."""
        return self._live

    @property
    def remembered(self) -> int:
        """Rounds sent and unanswered whose answer would still serve a read."""
        return len(self._rounds)

    def _forget_useless_rounds(self) -> None:
        """Drop expired rounds whose answer would serve nobody still waiting."""
        covered = [w.first for w in self._waiters.values() if w.first is not None]
        low = min(covered) if covered else None
        for c in [
            c for c, r in self._rounds.items() if c != self._live and (low is None or r.seq < low)
        ]:
            del self._rounds[c]
