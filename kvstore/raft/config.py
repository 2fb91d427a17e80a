"""Configuration of one Raft node.

A frozen value: the driver builds it once (reading flags or environment at its own entry
point) and hands it to ``RawNode``. Time is measured in ticks; the driver decides how long a
tick is. Randomness for election timeouts comes from ``rng``, an object the driver creates
(a seeded ``random.Random`` in tests, so a simulation replays exactly), because the core may
not read clocks or global random state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .errors import ConfigError
from .types import NONE

DEFAULT_ELECTION_TICK = 10
DEFAULT_HEARTBEAT_TICK = 1
DEFAULT_MAX_SIZE_PER_MSG = 1 << 20
DEFAULT_MAX_INFLIGHT_MSGS = 256
DEFAULT_MAX_INFLIGHT_BYTES = 32 << 20
DEFAULT_MAX_COMMITTED_SIZE_PER_READY = 4 << 20
DEFAULT_MAX_UNCOMMITTED_ENTRIES_SIZE = 0


@runtime_checkable
class RangeRandom(Protocol):
    """A generator with ``randrange`` (``random.Random`` qualifies)."""

    def randrange(self, start: int, stop: int, /) -> int:
        """An integer in ``[start, stop)``."""
        ...


@runtime_checkable
class FloatRandom(Protocol):
    """A generator with ``random()`` returning a float in ``[0, 1)``."""

    def random(self) -> float:
        """A float in ``[0, 1)``."""
        ...


RandomSource = RangeRandom | FloatRandom


class SplitMix64:
    """A tiny deterministic generator used when the driver passes no ``rng``.

    Seeded from the node id so that nodes of one cluster draw different timeouts, and so
    that a run without an explicit generator is still reproducible.
    """

    __slots__ = ("_state",)

    _MASK = (1 << 64) - 1

    def __init__(self, seed: int) -> None:
        self._state = seed & self._MASK

    def _next(self) -> int:
        self._state = (self._state + 0x9E3779B97F4A7C15) & self._MASK
        z = self._state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self._MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self._MASK
        return z ^ (z >> 31)

    def randrange(self, start: int, stop: int, /) -> int:
        """An integer in ``[start, stop)`` (modulo bias is irrelevant for timeouts)."""
        return start + self._next() % (stop - start)


def draw(rng: RandomSource, start: int, stop: int) -> int:
    """An integer in ``[start, stop)`` from either kind of generator."""
    randrange = getattr(rng, "randrange", None)  # cheaper than a runtime Protocol check
    if randrange is not None:
        value: int = randrange(start, stop)
        return value
    assert isinstance(rng, FloatRandom)
    return start + int(rng.random() * (stop - start))


@dataclass(frozen=True, slots=True)
class RaftConfig:
    """How one node behaves. Invariants are checked by :meth:`validate`.

    ``election_tick`` must exceed ``heartbeat_tick`` so followers hear several heartbeats
    before they give up on a leader; the randomized timeout is drawn from
    ``[election_tick, 2 * election_tick)`` each time a node resets its election timer.
    """

    id: int
    """This node's id (>= 1)."""
    election_tick: int = DEFAULT_ELECTION_TICK
    heartbeat_tick: int = DEFAULT_HEARTBEAT_TICK
    applied: int = 0
    """The last index the driver's state machine has applied (on restart): committed
    entries after it are handed out again."""
    max_size_per_msg: int = DEFAULT_MAX_SIZE_PER_MSG
    """Byte budget of one append message (batching); at least one entry is always sent."""
    max_inflight_msgs: int = DEFAULT_MAX_INFLIGHT_MSGS
    """How many append messages may be in flight to one follower (pipelining)."""
    max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES
    """How many entry bytes may be in flight to one follower; 0 means no byte limit."""
    max_committed_size_per_ready: int = DEFAULT_MAX_COMMITTED_SIZE_PER_READY
    """Byte budget of ``Ready.committed_entries``."""
    max_uncommitted_entries_size: int = DEFAULT_MAX_UNCOMMITTED_ENTRIES_SIZE
    """Leader: refuse proposals once this many bytes are uncommitted; 0 means no limit."""
    check_quorum: bool = True
    """Leader steps down if it has not heard from a quorum within an election timeout;
    followers that heard from a leader recently ignore vote requests (leader lease)."""
    pre_vote: bool = True
    """Run a pre-election first so a partitioned node cannot inflate terms."""
    read_only_lease_based: bool = False
    """Serve ReadIndex from the leader lease instead of a heartbeat round (needs bounded
    clock drift; safe mode is the default)."""
    disable_proposal_forwarding: bool = False
    """Followers refuse proposals (raising NotLeader) instead of forwarding them."""
    rng: RandomSource | None = None
    """Source of randomized election timeouts; ``None`` uses :class:`SplitMix64` seeded
    from ``id``."""

    def validate(self) -> None:
        """Raise ConfigError for values the algorithm cannot work with."""
        if self.id == NONE or self.id < 0:
            raise ConfigError("node id must be >= 1")
        if self.heartbeat_tick <= 0:
            raise ConfigError("heartbeat_tick must be > 0")
        if self.election_tick <= self.heartbeat_tick:
            raise ConfigError("election_tick must be greater than heartbeat_tick")
        if self.max_inflight_msgs <= 0:
            raise ConfigError("max_inflight_msgs must be > 0")
        if self.max_inflight_bytes < 0:
            raise ConfigError("max_inflight_bytes must be >= 0")
        if self.max_inflight_bytes and self.max_inflight_bytes < self.max_size_per_msg:
            raise ConfigError("max_inflight_bytes must be >= max_size_per_msg")
        if self.applied < 0:
            raise ConfigError("applied must be >= 0")
        if self.read_only_lease_based and not self.check_quorum:
            raise ConfigError("read_only_lease_based requires check_quorum")
