"""A deterministic simulation of whole Raft clusters, and the safety checks run over it.

The simulation plays the driver of every ``RawNode``: for each Ready it persists to the
node's ``MemoryStorage`` "disk" first, then puts the messages on a simulated network, then
applies committed entries to a tiny state machine (an index and a CRC chain of everything
applied). One seeded ``random.Random`` chooses every action, so a seed replays exactly.

The network delivers messages in any order (mostly oldest first), and the scheduler drops,
duplicates and delays them, partitions the nodes, crashes nodes (losing everything in
memory and, sometimes, a hard-state commit index that was written without a sync) and
restarts them from their disk, proposes entries, changes membership (learners, promotion,
removal), transfers leadership, issues ReadIndex requests and compacts logs behind
snapshots.

``Checker`` holds the invariants; each is checked incrementally after every step, so a
violation is reported at the step that caused it, with the seed and the recent actions.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from kvstore.raft import (
    ConfigError,
    MemoryStorage,
    ProposalDropped,
    RaftConfig,
    RawNode,
    decode_conf_change,
)
from kvstore.raft.types import (
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Ready,
    Snapshot,
    SnapshotMetadata,
    StateType,
)

_SM = struct.Struct(">QI")  # state-machine snapshot: applied index, CRC chain
_ENTRY_KEY = struct.Struct(">QQ")

ELECTION_TICK = 6
HEARTBEAT_TICK = 1
LIVENESS_TICKS = 150
"""After healing, a leader must commit a new proposal within this many ticks."""
CONVERGE_TICKS = 150
"""... and every member must then apply it within this many more."""


WEIGHTS: tuple[tuple[str, float], ...] = (
    ("tick", 10.0),
    ("tick-all", 6.0),
    ("propose", 12.0),
    ("drop", 2.0),
    ("duplicate", 2.0),
    ("partition", 1.5),  # partition when whole, heal when partitioned
    ("crash", 1.5),  # crash a running node or restart a crashed one
    ("conf-change", 1.0),
    ("transfer", 0.6),
    ("read", 3.0),
    ("compact", 1.5),
)
"""Relative weights of the scheduler's actions besides delivery."""
STORMY_WEIGHTS: tuple[tuple[str, float], ...] = tuple(
    (a, w * {"crash": 4.0, "partition": 3.0, "drop": 2.0}.get(a, 1.0)) for a, w in WEIGHTS
)
"""Every fourth seed: many more crashes, partitions and drops (short-lived leaders, the
interleavings behind split votes and overwritten uncommitted entries)."""
_WITHOUT_NODES = frozenset({"partition", "crash", "transfer", "drop", "duplicate"})
"""Actions that make sense even when every node is down."""
PER_MESSAGE_WEIGHT = 6.0
"""Delivery's weight per message in flight."""


class InvariantViolation(AssertionError):
    """A safety or liveness property failed; the message names the seed."""


def bootstrap_snapshot(cs: ConfState) -> Snapshot:
    """The snapshot every initial member starts from: index 1, term 1, the initial
    membership, and an empty state machine. A joining member starts with an empty disk and
    receives a leader's snapshot instead, which is how it learns the membership."""
    return Snapshot(SnapshotMetadata(1, 1, cs), _SM.pack(1, 0))


@dataclass(slots=True)
class SimNode:
    """One node: its disk survives crashes; ``raw`` and the state machine do not."""

    id: int
    disk: MemoryStorage
    raw: RawNode | None = None
    sm_index: int = 0
    sm_digest: int = 0
    conf: ConfState = field(default_factory=ConfState)
    synced_commit: int = 0
    """The commit index last written with a sync; a crash may lose later ones."""
    last_commit: int = 0
    """The in-memory commit index last seen in this incarnation (never decreases)."""
    persisted_commit: int = 0
    """The commit index last persisted in this incarnation (never decreases)."""


@dataclass(slots=True)
class Stats:
    """What one schedule did (for reports and for tests that check coverage)."""

    steps: int = 0
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0
    crashes: int = 0
    proposals: int = 0
    committed: int = 0
    elections: int = 0
    conf_changes: int = 0
    conf_changes_applied: int = 0
    transfers: int = 0
    reads: int = 0
    reads_served: int = 0
    snapshots_sent: int = 0
    compactions: int = 0
    partitions: int = 0
    heal_ticks: int = 0


def _show(item: object) -> str:
    """Trace items as text (messages are kept as objects until a failure is reported)."""
    if isinstance(item, Message):
        return f"{item.type.name} {item.from_}->{item.to} t{item.term}"
    return str(item)


class Checker:
    """The safety invariants, checked incrementally.

    * election safety: at most one leader per term;
    * log matching: an entry is identified by (index, term); every copy of it anywhere
      carries the same data and follows an entry of the same term, so by induction two
      logs holding it agree on everything before it;
    * leader completeness: an entry committed by the leader of term T is in the log of
      every leader of a later term;
    * state machine safety: no two nodes apply different entries at one index (and state
      machines restored from snapshots carry the same CRC chain as those that applied);
    * commit index monotonic per node incarnation, in memory and on disk;
    * ReadIndex linearizability: a read is served at an index no lower than any commit
      index that existed anywhere when it was requested.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.leaders: dict[int, int] = {}
        self.entries: dict[tuple[int, int], tuple[bytes, int]] = {}
        self.applied: dict[int, tuple[int, bytes, int]] = {}
        self.commits_by_term: dict[int, tuple[int, int]] = {}
        self.max_commit = 0
        self.read_floor: dict[bytes, int] = {}
        self.trace: deque[tuple[object, ...]] = deque(maxlen=40)

    def fail(self, what: str) -> InvariantViolation:
        """An exception naming the seed, the broken property and the last actions."""
        recent = "\n".join("  " + " ".join(map(_show, t)) for t in self.trace)
        return InvariantViolation(
            f"seed {self.seed}: {what}\nreproduce: KVSTORE_SIM_SEED={self.seed} "
            f".venv/bin/python -m pytest tests/kvstore/raft/test_simulation.py -k random\n"
            f"    or: .venv/bin/python -m tests.kvstore.raft.sim {self.seed}\n"
            f"last actions:\n{recent}"
        )

    def persisted_entries(self, node: SimNode, ents: tuple[Entry, ...]) -> None:
        """Log matching, checked on every entry written to any disk."""
        disk = node.disk
        first = ents[0].index
        prev_term = -1
        if first - 1 >= disk.first_index() - 1 and first - 1 <= disk.last_index():
            prev_term = disk.term(first - 1)
        seen = self.entries
        for e in ents:
            key = (e.index, e.term)
            got = seen.get(key)
            if got is None:
                seen[key] = (e.data, prev_term)
            else:
                data, pt = got
                if data != e.data:
                    raise self.fail(f"log matching: two entries at {key} differ (node {node.id})")
                if pt != -1 and prev_term not in (-1, pt):
                    raise self.fail(
                        f"log matching: entry {key} follows term {prev_term} on node "
                        f"{node.id} but term {pt} elsewhere"
                    )
                if pt == -1 and prev_term != -1:
                    seen[key] = (data, prev_term)
            prev_term = e.term

    def applied_entry(self, node: SimNode, e: Entry, digest: int) -> None:
        """State machine safety for one applied entry."""
        got = self.applied.get(e.index)
        if got is None:
            self.applied[e.index] = (e.term, e.data, digest)
        elif got != (e.term, e.data, digest):
            raise self.fail(
                f"state machine safety: node {node.id} applied {(e.term, e.data)} at "
                f"{e.index}, another node applied {got[:2]}"
            )

    def restored(self, node: SimNode, index: int, digest: int) -> None:
        """A state machine restored from a snapshot matches what others applied."""
        got = self.applied.get(index)
        if got is not None and got[2] != digest:
            raise self.fail(f"snapshot at {index} on node {node.id} diverges from applied state")

    def observe(self, node: SimNode) -> None:
        """Per-step checks of one node's in-memory state."""
        assert node.raw is not None
        r = node.raw.raft
        log = r.raft_log
        committed = log.committed
        if committed < node.last_commit:
            raise self.fail(
                f"node {node.id}: commit index went back from {node.last_commit} to {committed}"
            )
        node.last_commit = committed
        self.max_commit = max(self.max_commit, committed)
        if r.state != StateType.LEADER:
            return
        term = r.term
        holder = self.leaders.get(term)
        if holder is None:
            self.leaders[term] = node.id
            self._check_leader_completeness(node)
        elif holder != node.id:
            raise self.fail(f"two leaders in term {term}: {holder} and {node.id}")
        rec = self.commits_by_term.get(term)
        if rec is None or committed > rec[0]:
            self.commits_by_term[term] = (committed, log.term_or_zero(committed))

    def _check_leader_completeness(self, node: SimNode) -> None:
        assert node.raw is not None
        r = node.raw.raft
        log = r.raft_log
        for t, (index, entry_term) in self.commits_by_term.items():
            if t >= r.term:
                continue
            if index < log.first_index() - 1:
                continue  # covered by the leader's snapshot (checked through its digest)
            if index > log.last_index() or log.term_or_zero(index) != entry_term:
                raise self.fail(
                    f"leader completeness: leader {node.id} of term {r.term} lacks entry "
                    f"{index} (term {entry_term}) committed in term {t}"
                )

    def read_requested(self, ctx: bytes) -> None:
        """Remember the highest commit index in existence when a read was requested."""
        self.read_floor[ctx] = self.max_commit

    def read_served(self, node: SimNode, ctx: bytes, index: int) -> None:
        """A ReadIndex answer must not be older than the request."""
        floor = self.read_floor.get(ctx)
        if floor is not None and index < floor:
            raise self.fail(
                f"stale read on node {node.id}: read index {index} < commit {floor} "
                "known when the read was requested"
            )


class Simulation:
    """One seeded schedule over a cluster of ``size`` voters."""

    def __init__(self, seed: int, size: int = 3, steps: int = 500) -> None:
        self.seed = seed
        self.size = size
        self.steps = steps
        self.rng = random.Random(seed)
        self.weights = STORMY_WEIGHTS if seed % 4 == 3 else WEIGHTS
        self.variant = (seed // 2) % 5
        """3: pre-vote off, 4: check-quorum (and lease) off; safety must not depend on
        either."""
        self.total_weight = sum(w for _, w in self.weights)
        self._actions: list[tuple[float, Callable[[list[SimNode]], None], bool]] = [
            (w, getattr(self, "_act_" + a.replace("-", "_")), a not in _WITHOUT_NODES)
            for a, w in self.weights
        ]
        self.check = Checker(seed)
        self.stats = Stats()
        self.net: list[Message] = []
        self.groups: dict[int, int] | None = None
        self.nodes: dict[int, SimNode] = {}
        self.next_id = size + 1
        self.proposal_seq = 0
        self.read_seq = 0
        cs = ConfState(voters=frozenset(range(1, size + 1)))
        for nid in range(1, size + 1):
            disk = MemoryStorage()
            disk.apply_snapshot(bootstrap_snapshot(cs))
            disk.set_hard_state(HardState(term=1, commit=1))
            node = SimNode(nid, disk, synced_commit=1)
            self.nodes[nid] = node
            self.start(node)

    # -- driver -------------------------------------------------------------------------

    def start(self, node: SimNode) -> None:
        """(Re)start a node from its disk: the state machine restarts from the snapshot."""
        snap = node.disk.snapshot()
        if snap.is_empty:
            node.sm_index, node.sm_digest = 0, 0
        else:
            node.sm_index, node.sm_digest = _SM.unpack(snap.data)
        node.conf = snap.metadata.conf_state
        cfg = RaftConfig(
            id=node.id,
            election_tick=ELECTION_TICK,
            heartbeat_tick=HEARTBEAT_TICK,
            max_size_per_msg=256,
            max_inflight_msgs=4,
            max_inflight_bytes=2048,
            applied=max(snap.metadata.index, node.disk.first_index() - 1),
            rng=random.Random(self.rng.getrandbits(32)),
            pre_vote=self.variant != 3,
            check_quorum=self.variant != 4,
        )
        node.raw = RawNode(cfg, node.disk)
        node.last_commit = node.raw.raft.raft_log.committed
        node.persisted_commit = node.disk.hard_state.commit

    def crash(self, node: SimNode, lose_unsynced: bool) -> None:
        """Lose everything in memory; maybe also an unsynced commit index on disk."""
        node.raw = None
        self.stats.crashes += 1
        if lose_unsynced:
            hs = node.disk.hard_state
            if hs.commit > node.synced_commit:
                node.disk.set_hard_state(HardState(hs.term, hs.vote, node.synced_commit))

    def process(self, node: SimNode, crash_after_persist: bool = False) -> None:
        """Handle every Ready of ``node`` (persist, send, apply, advance), then check."""
        raw = node.raw
        if raw is None:
            return
        check = self.check
        while raw.has_ready():
            rd = raw.ready()
            self._persist(node, rd)
            if crash_after_persist:
                self.crash(node, lose_unsynced=False)
                return
            for m in rd.messages:
                self.net.append(m)
            if rd.snapshot is not None:
                node.sm_index, node.sm_digest = _SM.unpack(rd.snapshot.data)
                node.conf = rd.snapshot.metadata.conf_state
                check.restored(node, node.sm_index, node.sm_digest)
            for e in rd.committed_entries:
                self._apply(node, e)
            for rs in rd.read_states:
                self.stats.reads_served += 1
                check.read_served(node, rs.request_ctx, rs.index)
            raw.advance(rd)
        check.observe(node)

    def _persist(self, node: SimNode, rd: Ready) -> None:
        disk = node.disk
        if rd.snapshot is not None:
            disk.apply_snapshot(rd.snapshot)
        if rd.entries:
            self.check.persisted_entries(node, rd.entries)
            disk.append(rd.entries)
        hs = rd.hard_state
        if hs is not None:
            if hs.commit < node.persisted_commit:
                raise self.check.fail(
                    f"node {node.id}: persisted commit went back from "
                    f"{node.persisted_commit} to {hs.commit}"
                )
            node.persisted_commit = hs.commit
            disk.set_hard_state(hs)
        if rd.must_sync or rd.snapshot is not None:
            node.synced_commit = disk.hard_state.commit

    def _apply(self, node: SimNode, e: Entry) -> None:
        if e.index != node.sm_index + 1:
            raise self.check.fail(
                f"node {node.id} applies {e.index} after {node.sm_index} (gap or repeat)"
            )
        digest = zlib.crc32(e.data, zlib.crc32(_ENTRY_KEY.pack(e.index, e.term), node.sm_digest))
        self.check.applied_entry(node, e, digest)
        node.sm_index = e.index
        node.sm_digest = digest
        if e.type == EntryType.CONF_CHANGE:
            assert node.raw is not None
            node.conf = node.raw.apply_conf_change(decode_conf_change(e.data))
            self.stats.conf_changes_applied += 1
        elif e.data:
            self.stats.committed += 1

    # -- network ------------------------------------------------------------------------

    def _connected(self, a: int, b: int) -> bool:
        g = self.groups
        return g is None or g.get(a, 0) == g.get(b, 0)

    def deliver(self, i: int) -> None:
        """Deliver the i-th message in flight (if its path is up and its target alive)."""
        m = self.net.pop(i)
        target = self.nodes.get(m.to)
        if target is None or target.raw is None or not self._connected(m.from_, m.to):
            self._lost(m)
            return
        self.stats.delivered += 1
        if m.type == MessageType.SNAP:
            self._snapshot_outcome(m, ok=True)
        target.raw.step(m)
        self.process(target)

    def _lost(self, m: Message) -> None:
        self.stats.dropped += 1
        if m.type == MessageType.SNAP:
            self._snapshot_outcome(m, ok=False)
        elif m.type == MessageType.APP and self.rng.random() < 0.3:
            sender = self.nodes.get(m.from_)
            if sender is not None and sender.raw is not None:
                sender.raw.report_unreachable(m.to)
                self.process(sender)

    def _snapshot_outcome(self, m: Message, ok: bool) -> None:
        sender = self.nodes.get(m.from_)
        if sender is None or sender.raw is None:
            return
        self.stats.snapshots_sent += ok
        sender.raw.report_snapshot(m.to, ok)
        self.process(sender)

    # -- actions ------------------------------------------------------------------------

    def alive(self) -> list[SimNode]:
        """Running nodes, in id order."""
        return [n for n in self.nodes.values() if n.raw is not None]

    def leader(self) -> SimNode | None:
        """The running leader with the highest term, if any."""
        best: SimNode | None = None
        best_term = -1
        for n in self.nodes.values():
            r = n.raw.raft if n.raw is not None else None
            if r is not None and r.state == StateType.LEADER and r.term > best_term:
                best, best_term = n, r.term
        return best

    def tick(self, node: SimNode) -> None:
        """One tick of a node's clock."""
        assert node.raw is not None
        node.raw.tick()
        self.process(node)

    def propose(self, node: SimNode) -> bool:
        """Propose a unique payload on ``node``; returns whether it was accepted."""
        assert node.raw is not None
        self.proposal_seq += 1
        data = b"s%d-p%d" % (self.seed, self.proposal_seq)
        data += b"x" * self.rng.choice((0, 0, 0, 40, 200))
        try:
            node.raw.propose(data)
        except ProposalDropped:
            return False
        self.stats.proposals += 1
        self.process(node)
        return True

    def conf_change(self) -> None:
        """Propose one membership change at the leader (or a random node)."""
        lead = self.leader() or self.rng.choice(self.alive())
        assert lead.raw is not None
        cs = lead.raw.raft.conf_state()
        members = sorted(cs.voters | cs.learners)
        choices: list[ConfChange] = []
        if len(members) < self.size + 2:
            nid = self.next_id
            choices.append(ConfChange(ConfChangeType.ADD_LEARNER, nid))
            choices.append(ConfChange(ConfChangeType.ADD_NODE, nid))
        choices.extend(ConfChange(ConfChangeType.ADD_NODE, nid) for nid in sorted(cs.learners))
        if len(cs.voters) > 2:
            choices.extend(ConfChange(ConfChangeType.REMOVE_NODE, nid) for nid in members)
        if not choices:
            return
        cc = self.rng.choice(choices)
        self.check.trace.append(("conf_change", lead.id, cc.type.name, cc.node_id))
        try:
            lead.raw.propose_conf_change(cc)
        except (ProposalDropped, ConfigError):
            return
        self.stats.conf_changes += 1
        if cc.node_id == self.next_id:
            # A joining member starts with an empty disk; it learns the membership from
            # the leader's snapshot.
            self.next_id += 1
            node = SimNode(cc.node_id, MemoryStorage())
            self.nodes[cc.node_id] = node
            self.start(node)
        self.process(lead)

    def transfer(self) -> None:
        """Ask the leader to hand over to a random voter."""
        lead = self.leader()
        if lead is None:
            return
        assert lead.raw is not None
        voters = sorted(lead.raw.raft.trk.voters - {lead.id})
        if not voters:
            return
        target = self.rng.choice(voters)
        self.check.trace.append(("transfer", lead.id, target))
        self.stats.transfers += 1
        lead.raw.transfer_leader(target)
        self.process(lead)

    def read(self, node: SimNode) -> None:
        """Issue a ReadIndex request on ``node``."""
        assert node.raw is not None
        self.read_seq += 1
        ctx = b"r%d" % self.read_seq
        self.check.read_requested(ctx)
        try:
            node.raw.read_index(ctx)
        except ProposalDropped:
            return
        self.stats.reads += 1
        self.process(node)

    def compact(self, node: SimNode) -> None:
        """Snapshot the state machine and drop a random part of the log behind it."""
        disk = node.disk
        if node.sm_index > disk.snapshot().metadata.index:
            disk.create_snapshot(node.sm_index, node.conf, _SM.pack(node.sm_index, node.sm_digest))
        hi = disk.snapshot().metadata.index
        lo = disk.first_index()
        if hi >= lo:
            disk.compact(self.rng.randint(lo, hi))
            self.stats.compactions += 1

    def partition(self) -> None:
        """Split the nodes into two sides (often one isolated node)."""
        ids = sorted(self.nodes)
        if self.rng.random() < 0.5:
            lone = self.rng.choice(ids)
            self.groups = {nid: int(nid == lone) for nid in ids}
        else:
            self.groups = {nid: self.rng.randrange(2) for nid in ids}
        self.stats.partitions += 1

    # -- schedules ----------------------------------------------------------------------

    def step(self) -> None:
        """One random action, chosen with the weights in ``WEIGHTS`` (delivery weighs
        more the more messages are in flight, which keeps the network bounded)."""
        rng = self.rng
        net = self.net
        total = self.total_weight
        r = rng.random() * (total + PER_MESSAGE_WEIGHT * len(net))
        self.stats.steps += 1
        if r >= total:
            # Deliver: mostly the oldest message, sometimes any (reordering and delay).
            i = 0 if rng.random() < 0.5 else rng.randrange(len(net))
            self.check.trace.append(("deliver", net[i]))
            self.deliver(i)
            return
        actions = self._actions
        act, needs_alive = actions[-1][1], actions[-1][2]
        for weight, fn, needs in actions:
            if r < weight:
                act, needs_alive = fn, needs
                break
            r -= weight
        alive = self.alive()
        if alive or not needs_alive:
            act(alive)

    def _act_tick(self, alive: list[SimNode]) -> None:
        node = self.rng.choice(alive)
        self.check.trace.append(("tick", node.id))
        self.tick(node)

    def _act_tick_all(self, alive: list[SimNode]) -> None:
        self.check.trace.append(("tick-all",))
        for node in alive:
            self.tick(node)

    def _act_propose(self, alive: list[SimNode]) -> None:
        lead = self.leader() if self.rng.random() < 0.8 else None
        node = lead or self.rng.choice(alive)
        self.check.trace.append(("propose", node.id))
        self.propose(node)

    def _act_drop(self, alive: list[SimNode]) -> None:
        if self.net:
            m = self.net.pop(self.rng.randrange(len(self.net)))
            self.check.trace.append(("drop", m.type.name, m.from_, m.to))
            self._lost(m)

    def _act_duplicate(self, alive: list[SimNode]) -> None:
        if self.net:
            m = self.net[self.rng.randrange(len(self.net))]
            self.check.trace.append(("duplicate", m.type.name, m.from_, m.to))
            self.net.append(m)
            self.stats.duplicated += 1

    def _act_partition(self, alive: list[SimNode]) -> None:
        if self.groups is None:
            self.partition()
            self.check.trace.append(("partition", self.groups))
        else:
            self.groups = None
            self.check.trace.append(("heal",))

    def _act_crash(self, alive: list[SimNode]) -> None:
        self._crash_or_restart(alive)

    def _act_conf_change(self, alive: list[SimNode]) -> None:
        self.conf_change()

    def _act_transfer(self, alive: list[SimNode]) -> None:
        self.transfer()

    def _act_read(self, alive: list[SimNode]) -> None:
        node = self.rng.choice(alive)
        self.check.trace.append(("read", node.id))
        self.read(node)

    def _act_compact(self, alive: list[SimNode]) -> None:
        node = self.rng.choice(alive)
        self.check.trace.append(("compact", node.id))
        self.compact(node)

    def _crash_or_restart(self, alive: list[SimNode]) -> None:
        rng = self.rng
        dead = [n for n in self.nodes.values() if n.raw is None]
        if dead and (rng.random() < 0.7 or len(alive) <= 1):
            node = rng.choice(dead)
            self.check.trace.append(("restart", node.id))
            self.start(node)
            self.process(node)
        elif alive:
            node = rng.choice(alive)
            if node.raw is not None and node.raw.has_ready() and rng.random() < 0.3:
                self.check.trace.append(("crash-after-persist", node.id))
                self.process(node, crash_after_persist=True)
            else:
                lose = rng.random() < 0.5
                self.check.trace.append(("crash", node.id, "lose-unsynced" if lose else ""))
                self.crash(node, lose_unsynced=lose)

    def heal(self) -> None:
        """Restart every node, reconnect the network, and demand progress: a leader must
        commit a fresh proposal within LIVENESS_TICKS, and every member must apply it
        within CONVERGE_TICKS more."""
        self.check.trace.append(("heal-all",))
        self.groups = None
        for node in self.nodes.values():
            if node.raw is None:
                self.start(node)
                self.process(node)
        target = 0
        marker = b"s%d-final" % self.seed
        for tick in range(LIVENESS_TICKS + CONVERGE_TICKS):
            self.stats.heal_ticks = tick
            self._round()
            lead = self.leader()
            if lead is None or lead.raw is None:
                if tick >= LIVENESS_TICKS:
                    raise self.check.fail(f"no leader {tick} ticks after healing")
                continue
            if target == 0:
                try:
                    lead.raw.propose(marker)
                except ProposalDropped:
                    continue
                self.process(lead)
                target = lead.raw.raft.raft_log.last_index()
                continue
            members = lead.raw.raft.trk.voters | lead.raw.raft.trk.learners
            if all(self.nodes[m].sm_index >= target for m in members):
                got = self.check.applied.get(target)
                if got is None or got[1] != marker:
                    raise self.check.fail(f"the final proposal was not committed at {target}")
                self._check_converged(members)
                return
            if tick >= LIVENESS_TICKS and lead.sm_index < target:
                raise self.check.fail(f"no proposal committed {tick} ticks after healing")
        raise self.check.fail("members did not converge after healing")

    def _check_converged(self, members: set[int]) -> None:
        """Every member's state machine equals the one everybody applied: same CRC chain
        at its index, and that chain covers every entry ever acknowledged up to there."""
        for nid in sorted(members):
            node = self.nodes[nid]
            got = self.check.applied.get(node.sm_index)
            if got is None or got[2] != node.sm_digest:
                raise self.check.fail(
                    f"node {nid} ended with a state at {node.sm_index} that no node applied"
                )

    def _round(self) -> None:
        """One tick on every node, then deliver everything in flight (FIFO)."""
        for node in self.alive():
            self.tick(node)
        budget = 2000
        while self.net and budget:
            budget -= 1
            self.deliver(0)

    def run(self) -> Stats:
        """The whole schedule: ``steps`` random actions, then healing."""
        for _ in range(self.steps):
            self.step()
        self.heal()
        self.stats.elections = len(self.check.leaders)
        return self.stats


def size_for(seed: int) -> int:
    """The cluster size of a seed's schedule: even seeds run 3 nodes, odd seeds 5, so a
    seed alone reproduces a schedule."""
    return 3 if seed % 2 == 0 else 5


def run_schedule(seed: int, size: int | None = None, steps: int = 500) -> Stats:
    """Run one schedule; raises InvariantViolation (naming the seed) on any failure."""
    sim = Simulation(seed, size or size_for(seed), steps)
    try:
        return sim.run()
    except InvariantViolation:
        raise
    except Exception as exc:
        raise sim.check.fail(f"{type(exc).__name__}: {exc}") from exc


def main(argv: list[str] | None = None) -> int:
    """Replay one seed from the command line: ``python -m tests.kvstore.raft.sim SEED``."""
    import argparse  # noqa: PLC0415  (only the command line needs it)

    parser = argparse.ArgumentParser(description="Replay one simulated Raft schedule.")
    parser.add_argument("seed", type=int)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--size", type=int, default=0, help="default: 3 for even seeds, 5 odd")
    args = parser.parse_args(argv)
    try:
        stats = run_schedule(args.seed, args.size or None, args.steps)
    except InvariantViolation as exc:
        print(exc)
        return 1
    print(stats)
    return 0


__all__ = [
    "NONE",
    "Checker",
    "InvariantViolation",
    "SimNode",
    "Simulation",
    "Stats",
    "bootstrap_snapshot",
    "run_schedule",
    "size_for",
]


if __name__ == "__main__":
    raise SystemExit(main())
