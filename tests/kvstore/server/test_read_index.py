"""Linearizable reads when the messages of a ReadIndex round are lost.

Three ``Node`` drivers (real storage, state machine and Raft core) run in one event loop and
talk through a switchboard instead of gRPC, so a test decides exactly which Raft messages
arrive: it can drop a round's request or its answer, hold a member "paused" (nothing in,
nothing out) past the round, or restart a member while a round is out. Every test then
shows that later reads on every member complete, and that a read nobody can serve fails
with etcd's timeout instead of waiting forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from kvstore.api.gen.kvstorepb import internal_pb2
from kvstore.raft.types import NONE, ConfState, Message, MessageType
from kvstore.server import errors
from kvstore.server.lessor import LeaseClock
from kvstore.server.metrics import Metrics, new_metrics
from kvstore.server.node import Node
from kvstore.server.read_rounds import ReadRounds, round_ticks_for
from kvstore.server.statemachine import StateMachine
from kvstore.server.transport import Transport
from kvstore.storage.disk_storage import DiskStorage

TICK_S = 0.01
ELECTION_TICKS = 10
IDS = (1, 2, 3)

Filter = Callable[[Message], bool]
"""Whether the switchboard delivers a message (True) or drops it."""


class Switchboard(Transport):
    """Delivers each member's Raft messages to the addressee's ``Node.step``, unless a
    filter drops them or either end is cut off (paused or stopped)."""

    def __init__(self) -> None:
        super().__init__(on_unreachable=lambda _m: None, on_snapshot_status=lambda _m, _ok: None)
        self.nodes: dict[int, Node] = {}
        self.cut: set[int] = set()
        self.filters: list[Filter] = []

    def send(self, messages: tuple[Message, ...]) -> None:
        for msg in messages:
            if msg.from_ in self.cut or msg.to in self.cut:
                continue
            if not all(keep(msg) for keep in self.filters):
                continue
            node = self.nodes.get(msg.to)
            if node is not None:
                with contextlib.suppress(errors.EtcdError):  # the addressee is stopping
                    node.step([msg])


class Cluster:
    """Three in-process members sharing one switchboard."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.board = Switchboard()
        self.metrics: dict[int, Metrics] = {}

    def start(self, member_id: int) -> Node:
        storage = DiskStorage.open(
            self.root / str(member_id), conf_state=ConfState(voters=frozenset(IDS))
        )
        holder: list[Node] = []
        sm = StateMachine(
            member_id, 7, lambda: holder[0].term if holder else 0, LeaseClock(time.monotonic, 1)
        )
        snap = storage.snapshot()
        if not snap.is_empty:
            sm.restore(snap.data)
        self.metrics[member_id] = new_metrics()
        node = Node(
            member_id,
            storage,
            sm,
            self.board,
            self.metrics[member_id],
            tick_interval=TICK_S,
            election_ticks=ELECTION_TICKS,
            snapshot_count=10_000,
        )
        holder.append(node)
        self.board.nodes[member_id] = node
        node.start()
        return node

    async def stop(self, member_id: int) -> None:
        node = self.board.nodes.pop(member_id)
        await node.stop()
        node._storage.close()

    def node(self, member_id: int) -> Node:
        return self.board.nodes[member_id]

    async def leader(self, timeout: float = 5.0) -> int:
        """The leader every running member agrees on."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leads = {n.leader for n in self.board.nodes.values()}
            if len(leads) == 1 and NONE not in leads:
                lead = leads.pop()
                if lead in self.board.nodes and self.node(lead).status().is_leader:
                    return lead
            await asyncio.sleep(TICK_S)
        raise AssertionError("no agreed leader")

    async def put(self, member_id: int, value: bytes) -> None:
        request = internal_pb2.InternalRequest()
        request.put.key = b"k"
        request.put.value = value
        result = await self.node(member_id).propose(request, 5.0)
        assert result.error is None


@contextlib.asynccontextmanager
async def _running(root: Path) -> AsyncIterator[Cluster]:
    c = Cluster(root)
    for mid in IDS:
        c.start(mid)
    try:
        await c.leader()
        yield c
    finally:
        for mid in list(c.board.nodes):
            await c.stop(mid)


def _run(root: Path, scenario: Callable[[Cluster], Awaitable[None]]) -> None:
    """Run ``scenario`` on a fresh cluster; 20 s at most, so a hang fails the test."""

    async def main() -> None:
        async with _running(root) as c:
            await asyncio.wait_for(scenario(c), 20.0)

    asyncio.run(main())


def _drop(kind: MessageType) -> Filter:
    return lambda m: m.type != kind


async def _abandoned_read(node: Node) -> None:
    """A read whose caller goes away (the client's deadline passed, so gRPC cancels the
    handler) while its round is out."""
    task = asyncio.ensure_future(node.read_index(5.0))
    await asyncio.sleep(3 * TICK_S)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, errors.EtcdError):
        await task


async def _every_member_reads(cluster: Cluster, within: float = 2.0) -> None:
    for mid, node in sorted(cluster.board.nodes.items()):
        try:
            await asyncio.wait_for(node.read_index(within), within + 1.0)
        except (errors.EtcdError, TimeoutError) as exc:
            raise AssertionError(f"member {mid} serves no linearizable read: {exc!r}") from None


@pytest.mark.parametrize(
    "lost",
    [MessageType.READ_INDEX, MessageType.READ_INDEX_RESP],
    ids=["request-dropped", "answer-dropped"],
)
def test_a_follower_read_whose_round_was_lost_does_not_block_later_reads(
    tmp_path: Path, lost: MessageType
) -> None:
    async def scenario(cluster: Cluster) -> None:
        lead = await cluster.leader()
        follower = next(m for m in IDS if m != lead)
        cluster.board.filters.append(_drop(lost))
        await _abandoned_read(cluster.node(follower))
        cluster.board.filters.clear()
        await _every_member_reads(cluster)

    _run(tmp_path, scenario)


def test_a_leader_read_whose_heartbeats_were_answered_by_paused_members_completes_later(
    tmp_path: Path,
) -> None:
    """Both followers 'paused' (cut off) past the leader's round, long enough for the
    leader to step down (check-quorum) and drop the round, then resumed."""

    async def scenario(cluster: Cluster) -> None:
        lead = await cluster.leader()
        followers = {m for m in IDS if m != lead}
        cluster.board.cut |= followers
        await _abandoned_read(cluster.node(lead))
        while cluster.node(lead).status().is_leader:
            await asyncio.sleep(TICK_S)
        cluster.board.cut.clear()
        await cluster.leader()
        await _every_member_reads(cluster)

    _run(tmp_path, scenario)


def test_a_round_sent_to_a_leader_that_restarts_does_not_block_later_reads(tmp_path: Path) -> None:
    async def scenario(cluster: Cluster) -> None:
        lead = await cluster.leader()
        follower = next(m for m in IDS if m != lead)
        cluster.board.cut.add(lead)
        await _abandoned_read(cluster.node(follower))
        await cluster.stop(lead)
        cluster.board.cut.clear()
        cluster.start(lead)
        await cluster.leader()
        await _every_member_reads(cluster)

    _run(tmp_path, scenario)


def test_reads_waiting_behind_a_lost_round_are_served_by_its_retry(tmp_path: Path) -> None:
    """Callers that stay: the lost round expires and is retried within ticks, long before
    the callers' own deadline."""

    async def scenario(cluster: Cluster) -> None:
        lead = await cluster.leader()
        follower = next(m for m in IDS if m != lead)
        dropped: list[Message] = []

        def drop_first_request(m: Message) -> bool:
            if m.type == MessageType.READ_INDEX and not dropped:
                dropped.append(m)
                return False
            return True

        cluster.board.filters.append(drop_first_request)
        node = cluster.node(follower)
        started = time.monotonic()
        await asyncio.gather(*(node.read_index(5.0) for _ in range(5)))
        assert dropped, "the round's request was never sent"
        assert time.monotonic() - started < 2.0

    _run(tmp_path, scenario)


def test_a_read_nobody_can_serve_fails_with_etcds_timeout_and_is_seen_in_the_metrics(
    tmp_path: Path,
) -> None:
    async def scenario(cluster: Cluster) -> None:
        lead = await cluster.leader()
        await cluster.put(lead, b"v")
        cluster.board.filters.append(_drop(MessageType.HEARTBEAT_RESP))
        node = cluster.node(lead)
        registry = cluster.metrics[lead].registry

        def sample(name: str) -> float:
            value = registry.get_sample_value(name)
            assert value is not None, name
            return value

        started = time.monotonic()
        read = asyncio.ensure_future(node.read_index(0.5))
        await asyncio.sleep(0.3)
        assert sample("kvstore_server_read_index_pending") == 1
        assert 0.2 < sample("kvstore_server_read_index_oldest_pending_seconds") < 0.5
        with pytest.raises(errors.EtcdError) as caught:
            await read
        assert caught.value == errors.TIMEOUT
        assert time.monotonic() - started < 1.5
        assert sample("kvstore_server_read_index_pending") == 0
        assert sample("kvstore_server_read_index_oldest_pending_seconds") == 0
        assert sample("etcd_server_read_indexes_failed_total") == 1
        assert sample("etcd_server_slow_read_indexes_total") >= 1, "its rounds were retried"

    _run(tmp_path, scenario)


# -- the bookkeeping alone (kvstore.server.read_rounds) ------------------------------------


def test_rounds_one_live_round_serves_everyone_who_joined_before_it() -> None:
    rounds: ReadRounds[str] = ReadRounds(round_ticks=3)
    assert not rounds.due()
    rounds.join("a", 0.0)
    rounds.join("b", 0.0)
    assert rounds.due()
    rounds.sent(b"1")
    rounds.join("c", 1.0)
    assert not rounds.due(), "one round live at a time"
    assert sorted(rounds.answered(b"1")) == ["a", "b"]
    assert rounds.due(), "c gathers for the next round"
    rounds.sent(b"2")
    assert rounds.answered(b"2") == ["c"]
    assert rounds.waiting == 0


def test_rounds_an_unanswered_round_is_retried_after_its_deadline_in_ticks() -> None:
    rounds: ReadRounds[str] = ReadRounds(round_ticks=3)
    rounds.join("a", 0.0)
    rounds.sent(b"lost")
    rounds.tick()
    rounds.tick()
    assert not rounds.due()
    rounds.tick()
    assert rounds.due(), "the lost round expired"
    rounds.sent(b"retry")
    assert rounds.answered(b"retry") == ["a"]


def test_rounds_a_round_whose_readers_all_left_holds_nobody_back() -> None:
    """The bug of issue 20: the readers of a lost round went away, and every later read
    waited behind that round forever."""
    rounds: ReadRounds[str] = ReadRounds(round_ticks=3)
    rounds.join("gone", 0.0)
    rounds.sent(b"lost")
    rounds.leave("gone")
    rounds.join("later", 1.0)
    for _ in range(3):
        rounds.tick()
    assert rounds.due()
    rounds.sent(b"next")
    assert rounds.answered(b"next") == ["later"]
    assert rounds.remembered == 0


def test_rounds_a_late_answer_serves_only_reads_that_joined_before_its_round() -> None:
    rounds: ReadRounds[str] = ReadRounds(round_ticks=1)
    rounds.join("early", 0.0)
    rounds.sent(b"slow")
    rounds.tick()  # expired, but remembered: its answer may still come
    rounds.join("late", 1.0)
    rounds.sent(b"retry")
    assert rounds.answered(b"slow") == ["early"], "late joined after 'slow' was sent"
    assert rounds.live == b"retry"
    assert rounds.answered(b"retry") == ["late"]
    assert rounds.answered(b"slow") == [], "an answer serves once"


def test_rounds_a_refused_round_is_tried_again_at_the_next_tick() -> None:
    rounds: ReadRounds[str] = ReadRounds(round_ticks=5)
    rounds.join("a", 0.0)
    rounds.sent(b"1")
    rounds.unsent(b"1")
    assert not rounds.due(), "no spinning while no leader is known"
    rounds.tick()
    assert rounds.due()
    rounds.sent(b"2")
    assert rounds.answered(b"1") == []
    assert rounds.answered(b"2") == ["a"]


def test_rounds_report_how_many_wait_and_for_how_long() -> None:
    rounds: ReadRounds[str] = ReadRounds()
    assert rounds.oldest_age(10.0) == 0.0
    rounds.join("a", 2.0)
    rounds.join("b", 5.0)
    assert rounds.waiting == 2
    assert rounds.oldest_age(10.0) == 8.0
    rounds.leave("a")
    assert rounds.oldest_age(10.0) == 5.0
    assert rounds.clear() == ["b"]
    assert rounds.waiting == 0


def test_round_deadline_is_half_an_election_timeout_and_at_least_two_ticks() -> None:
    assert round_ticks_for(10) == 5
    assert round_ticks_for(3) == 2
    with pytest.raises(ValueError, match="at least 1"):
        ReadRounds(0)
    rounds: ReadRounds[str] = ReadRounds()
    rounds.join("a", 0.0)
    rounds.sent(b"x")
    with pytest.raises(ValueError, match="once"):
        rounds.sent(b"x")
