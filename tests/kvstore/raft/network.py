"""A small deterministic cluster harness for targeted scenario tests.

Unlike the random simulation, a test here decides exactly which messages flow: ``settle``
delivers everything in flight (FIFO) until the network is quiet, honouring ``isolate``,
``cut`` and ``drop_types``. Every node's Ready is processed as a driver would: persist to
its ``MemoryStorage``, send, apply, advance. Applied entries are recorded per node.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from kvstore.raft import MemoryStorage, RaftConfig, RawNode, decode_conf_change
from kvstore.raft.types import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Snapshot,
    SnapshotMetadata,
    StateType,
)


@dataclass
class Member:
    """One node of the harness and what it has applied."""

    id: int
    storage: MemoryStorage
    node: RawNode
    applied: list[Entry] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    conf: ConfState = field(default_factory=ConfState)

    @property
    def state(self) -> StateType:
        """The node's role."""
        return self.node.raft.state

    @property
    def term(self) -> int:
        """The node's term."""
        return self.node.raft.term

    def data(self) -> list[bytes]:
        """The payloads of applied normal entries (empty leader entries skipped)."""
        return [e.data for e in self.applied if e.type == EntryType.NORMAL and e.data]


class Cluster:
    """Nodes wired by an in-memory network under the test's control."""

    def __init__(
        self,
        voters: Iterable[int],
        learners: Iterable[int] = (),
        *,
        pre_vote: bool = True,
        check_quorum: bool = True,
        election_tick: int = 10,
        max_size_per_msg: int = 1 << 20,
        max_inflight_msgs: int = 256,
        max_inflight_bytes: int = 0,
        max_uncommitted_entries_size: int = 0,
        seed: int = 1,
    ) -> None:
        self.members: dict[int, Member] = {}
        self.queue: list[Message] = []
        self.sent: list[Message] = []
        self.isolated: set[int] = set()
        self.cuts: set[frozenset[int]] = set()
        self.drop_types: set[MessageType] = set()
        self.down: set[int] = set()
        self._rng = random.Random(seed)
        self._cfg = {
            "pre_vote": pre_vote,
            "check_quorum": check_quorum,
            "election_tick": election_tick,
            "max_size_per_msg": max_size_per_msg,
            "max_inflight_msgs": max_inflight_msgs,
            "max_inflight_bytes": max_inflight_bytes,
            "max_uncommitted_entries_size": max_uncommitted_entries_size,
        }
        cs = ConfState(voters=frozenset(voters), learners=frozenset(learners))
        for nid in sorted(cs.voters | cs.learners):
            storage = MemoryStorage()
            storage.apply_snapshot(Snapshot(SnapshotMetadata(1, 1, cs)))
            storage.set_hard_state(HardState(term=1, commit=1))
            self._add(nid, storage)

    def _add(self, nid: int, storage: MemoryStorage) -> Member:
        cfg = RaftConfig(
            id=nid,
            heartbeat_tick=1,
            rng=random.Random(self._rng.getrandbits(32)),
            applied=storage.snapshot().metadata.index,
            **self._cfg,  # type: ignore[arg-type]
        )
        m = Member(nid, storage, RawNode(cfg, storage), conf=storage.snapshot().metadata.conf_state)
        self.members[nid] = m
        return m

    def add_empty(self, nid: int) -> Member:
        """Start a joining node with an empty disk (it needs the leader to add it)."""
        return self._add(nid, MemoryStorage())

    def restart(self, nid: int) -> Member:
        """Crash ``nid`` (losing its memory) and start it again from its storage."""
        self.down.discard(nid)
        old = self.members[nid]
        m = self._add(nid, old.storage)
        return m

    def __getitem__(self, nid: int) -> Member:
        return self.members[nid]

    # -- driving ------------------------------------------------------------------------

    def process(self, nid: int) -> None:
        """Handle every Ready of ``nid``."""
        m = self.members[nid]
        while m.node.has_ready():
            rd = m.node.ready()
            if rd.snapshot is not None:
                m.storage.apply_snapshot(rd.snapshot)
                m.conf = rd.snapshot.metadata.conf_state
            m.storage.append(rd.entries)
            if rd.hard_state is not None:
                m.storage.set_hard_state(rd.hard_state)
            self.queue.extend(rd.messages)
            self.sent.extend(rd.messages)
            for e in rd.committed_entries:
                m.applied.append(e)
                if e.type == EntryType.CONF_CHANGE:
                    m.conf = m.node.apply_conf_change(decode_conf_change(e.data))
            m.read_states.extend(rd.read_states)
            m.node.advance(rd)

    def process_all(self) -> None:
        """Handle every node's Ready."""
        for nid in sorted(self.members):
            if nid not in self.down:
                self.process(nid)

    def _passes(self, msg: Message) -> bool:
        if msg.to in self.down or msg.to not in self.members:
            return False
        if msg.to in self.isolated or msg.from_ in self.isolated:
            return False
        if frozenset((msg.from_, msg.to)) in self.cuts:
            return False
        return msg.type not in self.drop_types

    def settle(self, limit: int = 10_000) -> int:
        """Deliver messages (FIFO) until none are in flight; returns how many passed."""
        self.process_all()
        delivered = 0
        while self.queue and limit:
            limit -= 1
            msg = self.queue.pop(0)
            if not self._passes(msg):
                continue
            delivered += 1
            self.members[msg.to].node.step(msg)
            self.process(msg.to)
        return delivered

    def tick(self, nid: int, n: int = 1) -> None:
        """``n`` ticks on one node (no delivery)."""
        for _ in range(n):
            self.members[nid].node.tick()
        self.process(nid)

    def tick_all(self, n: int = 1, settle: bool = True) -> None:
        """``n`` rounds of: tick every running node, then (optionally) settle."""
        for _ in range(n):
            for nid in sorted(self.members):
                if nid not in self.down:
                    self.members[nid].node.tick()
            if settle:
                self.settle()
            else:
                self.process_all()

    def elect(self, nid: int) -> None:
        """Make ``nid`` campaign and settle."""
        self.members[nid].node.campaign()
        self.settle()
        assert self.members[nid].state == StateType.LEADER, f"{nid} did not win"

    def leaders(self) -> list[int]:
        """Running nodes that believe they lead."""
        return [
            nid
            for nid, m in sorted(self.members.items())
            if nid not in self.down and m.state == StateType.LEADER
        ]

    def cut(self, a: int, b: int) -> None:
        """Drop every message between ``a`` and ``b``."""
        self.cuts.add(frozenset((a, b)))

    def heal(self) -> None:
        """Undo isolations, cuts and type drops."""
        self.isolated.clear()
        self.cuts.clear()
        self.drop_types.clear()

    def log(self, nid: int) -> list[tuple[int, int]]:
        """(index, term) of every available entry of ``nid``."""
        return [(e.index, e.term) for e in self.members[nid].node.raft.raft_log.all_entries()]

    def sent_of(self, kind: MessageType) -> list[Message]:
        """Every message of ``kind`` sent so far."""
        return [m for m in self.sent if m.type == kind]
