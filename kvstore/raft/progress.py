"""What a leader knows about each follower's log, and how much it may send it.

A ``Progress`` moves between three states:

* PROBE: we do not know where the follower's log ends; send one append per heartbeat
  interval and wait for the answer (after a restart, a rejection, or an unreachable report).
* REPLICATE: the follower is in sync; stream appends optimistically, up to the inflight
  window (``Inflights``, bounded by message count and by bytes) — this is the pipelining.
* SNAPSHOT: the entries the follower needs were compacted; a snapshot is on its way and
  nothing else is sent until it is reported applied or failed.

Invariant: ``match < next`` always.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable

from . import quorum


class ProgressState(enum.IntEnum):
    """How the leader currently replicates to a follower."""

    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


class Inflights:
    """The append messages sent to one follower and not yet acknowledged.

    Bounded by ``size`` messages and, when ``max_bytes`` > 0, by the bytes of entries they
    carry. Each element is (last index of the message, its bytes); indexes only grow.
    """

    __slots__ = ("_q", "bytes", "max_bytes", "size")

    def __init__(self, size: int, max_bytes: int = 0) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.bytes = 0
        self._q: deque[tuple[int, int]] = deque()

    def add(self, index: int, nbytes: int) -> None:
        """Record a message whose last entry is ``index``."""
        self._q.append((index, nbytes))
        self.bytes += nbytes

    def free_le(self, index: int) -> None:
        """The follower acknowledged everything up to ``index``: those messages landed."""
        q = self._q
        while q and q[0][0] <= index:
            self.bytes -= q.popleft()[1]

    def free_first_one(self) -> None:
        """Forget the oldest message (presumed lost) to let one more out."""
        if self._q:
            self.bytes -= self._q.popleft()[1]

    def full(self) -> bool:
        """Whether no more messages may be sent."""
        return len(self._q) >= self.size or (0 < self.max_bytes <= self.bytes)

    def count(self) -> int:
        """How many messages are in flight."""
        return len(self._q)

    def reset(self) -> None:
        """Forget everything in flight."""
        self._q.clear()
        self.bytes = 0


class Progress:
    """The leader's view of one follower (or learner)."""

    __slots__ = (
        "inflights",
        "is_learner",
        "match",
        "msg_app_flow_paused",
        "next",
        "pending_snapshot",
        "recent_active",
        "state",
    )

    def __init__(self, next_index: int, inflights: Inflights, is_learner: bool) -> None:
        self.match = 0
        """The highest index known to be in the follower's log."""
        self.next = next_index
        """The next index to send."""
        self.state = ProgressState.PROBE
        self.pending_snapshot = 0
        """SNAPSHOT state: the index of the snapshot being sent."""
        self.recent_active = True
        """Heard from within the current check-quorum window."""
        self.msg_app_flow_paused = False
        """PROBE state: an append was sent and its answer is awaited."""
        self.inflights = inflights
        self.is_learner = is_learner

    def _reset_state(self, state: ProgressState) -> None:
        self.msg_app_flow_paused = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        """Fall back to probing (after a rejection, restart, or failed snapshot)."""
        if self.state == ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        """Start streaming: the follower's log matches ours up to ``match``."""
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        """A snapshot at ``snapshot_index`` is being sent."""
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def sent_entries(self, count: int, nbytes: int) -> None:
        """An append with ``count`` entries starting at ``next`` was sent."""
        if self.state == ProgressState.REPLICATE:
            if count:
                last = self.next + count - 1
                self.next = last + 1
                self.inflights.add(last, nbytes)
        elif self.state == ProgressState.PROBE and count:
            # One probe at a time: wait for its answer (or a heartbeat response).
            self.msg_app_flow_paused = True

    def maybe_update(self, n: int) -> bool:
        """The follower acknowledged index ``n``; returns whether ``match`` moved."""
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.msg_app_flow_paused = False
        self.next = max(self.next, n + 1)
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """The follower rejected an append at ``rejected``; ``match_hint`` is where its log
        may match. Returns False when the rejection is stale (out of order)."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.msg_app_flow_paused = False
        return True

    def is_paused(self) -> bool:
        """Whether appends to this follower must wait."""
        if self.state == ProgressState.PROBE:
            return self.msg_app_flow_paused
        if self.state == ProgressState.REPLICATE:
            return self.inflights.full()
        return True

    def __repr__(self) -> str:
        return (
            f"Progress(match={self.match}, next={self.next}, state={self.state.name}, "
            f"learner={self.is_learner}, inflight={self.inflights.count()})"
        )


class ProgressTracker:
    """The membership (voters and learners), one Progress per member, and the votes of
    the current election."""

    __slots__ = (
        "learners",
        "max_inflight",
        "max_inflight_bytes",
        "progress",
        "voters",
        "votes",
    )

    def __init__(self, max_inflight: int, max_inflight_bytes: int) -> None:
        self.voters: set[int] = set()
        self.learners: set[int] = set()
        self.progress: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}
        self.max_inflight = max_inflight
        self.max_inflight_bytes = max_inflight_bytes

    def new_progress(self, next_index: int, is_learner: bool) -> Progress:
        """A fresh Progress with this tracker's inflight limits."""
        return Progress(
            next_index, Inflights(self.max_inflight, self.max_inflight_bytes), is_learner
        )

    def is_singleton(self) -> bool:
        """Whether this is a one-voter cluster (which commits and elects alone)."""
        return len(self.voters) == 1

    def committed(self) -> int:
        """The largest index a majority of voters hold."""
        prs = self.progress
        match = {v: prs[v].match for v in self.voters if v in prs}
        return quorum.committed_index(self.voters, match)

    def record_vote(self, node: int, granted: bool) -> None:
        """Count a vote once per node per election."""
        self.votes.setdefault(node, granted)

    def reset_votes(self) -> None:
        """Start a new election count."""
        self.votes = {}

    def tally(self) -> tuple[int, int, quorum.VoteResult]:
        """(granted, rejected, outcome) of the current election."""
        granted = sum(1 for v in self.voters if self.votes.get(v) is True)
        rejected = sum(1 for v in self.voters if self.votes.get(v) is False)
        return granted, rejected, quorum.vote_result(self.voters, self.votes)

    def quorum_active(self) -> bool:
        """Whether a majority of voters were heard from recently (check-quorum)."""
        active = [i for i, pr in self.progress.items() if pr.recent_active and not pr.is_learner]
        return quorum.has_quorum(self.voters, active)

    def members(self) -> Iterable[int]:
        """Every member id (voters and learners), sorted for deterministic iteration."""
        return sorted(self.progress)
