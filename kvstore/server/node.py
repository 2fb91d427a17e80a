"""The driver of the Raft core: the only code that calls ``RawNode.ready()``.

One asyncio task owns the core. Everything else (gRPC handlers, the peer service, the tick
timer) queues an operation in the inbox and wakes the task; the task runs queued operations,
then handles every ``Ready`` in the order the core requires:

1. persist the snapshot, entries and hard state through ``DiskStorage`` (fsync when the core
   asks, in a worker thread so the event loop keeps serving);
2. only then send the messages (a leader sends its appends while it persists: see
   ``_handle_ready``);
3. apply the snapshot and the committed entries to the state machine, resolve the proposals
   and linearizable reads waiting on them;
4. ``advance()``.

Proposals that arrive while a ``Ready`` is being persisted are appended together in the next
one, so concurrent clients share one fsync (batching without a timer). A follower proposes
too: the core forwards its proposals to the leader as messages on the peer stream (batched
with everything else queued for the leader), and the follower answers its client once it
applies the entry itself, exactly as it does for its own reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from kvstore.api.gen.kvstorepb import internal_pb2
from kvstore.raft import RawNode, Status
from kvstore.raft.codec import decode_conf_change, encode_conf_change
from kvstore.raft.config import RaftConfig
from kvstore.raft.errors import ProposalDropped, RaftError, SnapshotOutOfDateError
from kvstore.raft.types import (
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    ReadState,
    Ready,
    Snapshot,
    StateType,
)
from kvstore.server import errors, logs, tracing
from kvstore.server.metrics import Metrics
from kvstore.server.read_rounds import ReadRounds, round_ticks_for
from kvstore.server.snapshots import SnapshotWriter
from kvstore.server.statemachine import ApplyResult, StateMachine
from kvstore.server.transport import Transport
from kvstore.storage.disk_storage import DiskStorage

log = logging.getLogger(__name__)

_T = TypeVar("_T")

SNAPSHOT_CATCH_UP_ENTRIES = 5_000
"""Entries kept in the log after a snapshot (at most ``--snapshot-count``), so slightly
lagging followers need no snapshot."""


class ReadContexts:
    """ReadIndex request contexts that are unique in the whole cluster, across restarts.

    The leader keys its pending ReadIndex requests by context and ignores a request whose
    context it already holds, so two members counting from the same start would lose each
    other's rounds (their readers waiting for the round's deadline): a context is the member
    id and a counter that starts at the wall clock in nanoseconds.
    """

    def __init__(self, member_id: int) -> None:
        self._prefix = member_id.to_bytes(8, "big")
        self._counter = itertools.count(time.time_ns())

    def next(self) -> bytes:
        """A context never handed out before."""
        return self._prefix + next(self._counter).to_bytes(8, "big")


def _fail(fut: asyncio.Future[_T], exc: BaseException) -> None:
    """Fail a waiter's future. Its caller may have given up already (a timed-out wait on a
    shielded future), so the exception is marked as seen: nobody is left to be told."""
    fut.set_exception(exc)
    fut.exception()


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """What Status and health report about this member."""

    member_id: int
    leader: int
    term: int
    commit: int
    applied: int
    is_leader: bool


class Node:
    """Drives one ``RawNode`` over ``DiskStorage``, a ``Transport`` and a ``StateMachine``."""

    def __init__(
        self,
        member_id: int,
        storage: DiskStorage,
        sm: StateMachine,
        transport: Transport,
        metrics: Metrics,
        *,
        tick_interval: float,
        election_ticks: int,
        snapshot_count: int,
    ) -> None:
        self.member_id = member_id
        self._storage = storage
        self._sm = sm
        self._transport = transport
        self._metrics = metrics
        self._tick_interval = tick_interval
        self._election_ticks = election_ticks
        self._snapshot_count = snapshot_count
        snap = storage.snapshot()
        self.applied = snap.metadata.index
        self._snapshot_index = snap.metadata.index
        hard_state, conf_state = storage.initial_state()
        self.conf_state: ConfState = conf_state
        self.term = hard_state.term
        self.commit = hard_state.commit
        self.leader = NONE
        self.role = StateType.FOLLOWER
        self._rn = RawNode(
            RaftConfig(
                id=member_id,
                election_tick=election_ticks,
                heartbeat_tick=1,
                applied=self.applied,
                check_quorum=True,
                pre_vote=True,
            ),
            storage,
        )
        self._inbox: deque[Callable[[], None]] = deque()
        self._wake = asyncio.Event()
        self._waiters: dict[int, asyncio.Future[ApplyResult]] = {}
        self._applied_waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._applied_seq = itertools.count()
        self._reads: ReadRounds[asyncio.Future[int]] = ReadRounds(round_ticks_for(election_ticks))
        self._read_round_queued = False
        self._read_contexts = ReadContexts(member_id)
        metrics.read_index_pending.set_function(lambda: self._reads.waiting)
        metrics.read_index_oldest.set_function(lambda: self._reads.oldest_age(time.monotonic()))
        self._leader_waiters: list[asyncio.Future[int]] = []
        self._ids = itertools.count(1)
        self._id_base = ((member_id & 0xFFFF) << 48) | (
            (int(time.time() * 1000) & 0xFFFFFFFF) << 16
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._snapshots = SnapshotWriter(storage, self._wake.set, self._fail_stop)
        self._stopped = False
        self.on_leader_change: Callable[[int, int], None] = lambda _old, _new: None
        self.on_removed: Callable[[], None] = lambda: None
        self.on_failed: Callable[[], None] = lambda: None
        self.on_tick: Callable[[], None] = lambda: None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the tick timer and the Ready loop."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run()), loop.create_task(self._ticker())]
        self._wake.set()

    async def stop(self) -> None:
        """Stop driving the core, fail waiters and sync the log."""
        self._stopped = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._snapshots.cancel()
        for fut in list(self._waiters.values()):
            if not fut.done():
                # Proposed but not applied here: it may still commit, so the outcome is
                # unknown ("server stopped" would tell clients it is safe to resend).
                _fail(fut, errors.TIMEOUT)
        self._waiters.clear()
        for pending in [*self._reads.clear(), *self._leader_waiters]:
            if not pending.done():
                _fail(pending, errors.STOPPED)
        try:
            await asyncio.to_thread(self._storage.sync)
        except OSError as exc:
            log.error("final sync failed: %s", exc)

    # -- the inbox ------------------------------------------------------------------------

    def _enqueue(self, op: Callable[[], None]) -> None:
        if self._stopped:
            raise errors.STOPPED
        self._inbox.append(op)
        self._wake.set()

    def step(self, messages: list[Message]) -> None:
        """Hand messages from peers to the core."""

        def op() -> None:
            for msg in messages:
                try:
                    self._rn.step(msg)
                except RaftError as exc:
                    log.debug("dropped message %s from %x: %s", msg.type.name, msg.from_, exc)

        self._enqueue(op)

    def report_unreachable(self, member_id: int) -> None:
        """A send to ``member_id`` failed."""
        self._enqueue(lambda: self._rn.report_unreachable(member_id))

    def report_snapshot(self, member_id: int, ok: bool) -> None:
        """A snapshot send to ``member_id`` finished."""
        if ok:
            self._metrics.snapshots_sent.inc()
        self._enqueue(lambda: self._rn.report_snapshot(member_id, ok))

    def transfer_leader(self, target: int) -> None:
        """Ask the core to hand leadership to ``target``."""
        self._enqueue(lambda: self._rn.transfer_leader(target))

    def campaign(self) -> None:
        """Start an election now."""
        self._enqueue(self._rn.campaign)

    # -- proposals and reads ----------------------------------------------------------------

    def next_request_id(self) -> int:
        """A request id unique to this member (member bits, start time, counter)."""
        return self._id_base + next(self._ids)

    async def propose(self, request: internal_pb2.InternalRequest, timeout: float) -> ApplyResult:
        """Propose ``request`` (its id set here) and wait until it is applied locally."""
        if request.id == 0:
            request.id = self.next_request_id()
        if not request.traceparent:
            request.traceparent = tracing.current_traceparent()
        data = request.SerializeToString()
        return await self._propose_and_wait(request.id, lambda: self._rn.propose(data), timeout)

    async def propose_conf_change(
        self, cc: ConfChange, request_id: int, timeout: float
    ) -> ApplyResult:
        """Propose a membership change and wait until it is applied locally."""
        return await self._propose_and_wait(
            request_id, lambda: self._rn.propose_conf_change(cc), timeout
        )

    async def _propose_and_wait(
        self, request_id: int, submit: Callable[[], None], timeout: float
    ) -> ApplyResult:
        fut: asyncio.Future[ApplyResult] = asyncio.get_running_loop().create_future()
        self._waiters[request_id] = fut

        def op() -> None:
            if fut.done():
                return
            try:
                submit()
            except ProposalDropped:
                self._metrics.proposals_failed.inc()
                self._waiters.pop(request_id, None)
                _fail(fut, errors.NO_LEADER.with_leader(self.leader))

        self._enqueue(op)
        self._metrics.proposals_pending.inc()
        with tracing.span("raft.proposal") as span:
            # hex, as etcd prints request ids: OTLP integers are signed 64-bit, ids are not
            span.set_attribute("kvstore.request_id", f"{request_id:016x}")
            try:
                async with asyncio.timeout(timeout):
                    return await asyncio.shield(fut)
            except TimeoutError:
                self._metrics.proposals_failed.inc()
                raise errors.TIMEOUT from None
            finally:
                self._metrics.proposals_pending.dec()
                self._waiters.pop(request_id, None)

    async def read_index(self, timeout: float) -> None:
        """Return once a linearizable read may be served from the local state machine.

        Concurrent callers share one ReadIndex round, and a member has one round live at a
        time: callers arriving meanwhile gather for the next, so under load a round (a
        heartbeat to every follower) serves many reads, as etcd's read loop does. Rounds,
        not callers, carry the retries (:mod:`.read_rounds`): a round unanswered after its
        deadline in ticks is replaced by a new one, whether or not anyone who started it
        still waits, so no read waits on a round that nobody will answer. A read not
        served within ``timeout`` fails with ``request timed out`` (``no leader`` while
        none is known), as etcd's does.
        """
        if self._stopped:
            raise errors.STOPPED
        deadline = time.monotonic() + timeout
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reads.join(fut, time.monotonic())
        try:
            self._queue_read_round()
            async with asyncio.timeout(timeout):
                index = await fut
        except TimeoutError:
            self._metrics.read_indexes_failed.inc()
            raise errors.NO_LEADER if self.leader == NONE else errors.TIMEOUT from None
        finally:
            self._reads.leave(fut)
        await self.wait_applied(index, max(0.0, deadline - time.monotonic()))

    def _queue_read_round(self) -> None:
        """Have the Raft loop send a round if one is due (once, however many ask)."""
        if self._read_round_queued or not self._reads.due():
            return
        self._enqueue(self._send_read_round)
        self._read_round_queued = True

    def _send_read_round(self) -> None:
        """On the Raft loop: hand the core a round covering every read not yet covered."""
        self._read_round_queued = False
        if not self._reads.due():
            return
        ctx = self._read_contexts.next()
        self._reads.sent(ctx)
        try:
            self._rn.read_index(ctx)
        except ProposalDropped:
            # A follower that knows no leader (an election is under way) cannot forward the
            # round; it is tried again at the next tick.
            self._reads.unsent(ctx)

    def _tick(self) -> None:
        """On the Raft loop: one tick of the core and of the read rounds' deadlines."""
        self._rn.tick()
        live = self._reads.live
        self._reads.tick()
        if live is not None and self._reads.live is None:
            self._metrics.slow_read_indexes.inc()
            log.debug("ReadIndex round %s unanswered by its deadline; retrying", live.hex())
        if self._reads.due():
            self._send_read_round()

    async def wait_applied(self, index: int, timeout: float) -> None:
        """Wait until the state machine has applied ``index``."""
        if self.applied >= index:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._applied_waiters, (index, next(self._applied_seq), fut))
        try:
            async with asyncio.timeout(timeout):
                await fut
        except TimeoutError:
            raise errors.TIMEOUT from None

    async def wait_leader(self, timeout: float) -> int:
        """The leader id, waiting up to ``timeout`` for one to be elected."""
        if self.leader != NONE:
            return self.leader
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._leader_waiters.append(fut)
        try:
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError:
            raise errors.NO_LEADER from None

    def status(self) -> NodeStatus:
        """A consistent view of the member's Raft position."""
        return NodeStatus(
            member_id=self.member_id,
            leader=self.leader,
            term=self.term,
            commit=self.commit,
            applied=self.applied,
            is_leader=self.role == StateType.LEADER,
        )

    def raw_status(self) -> Status:
        """The core's own status (progress of followers when leader)."""
        return self._rn.status()

    # -- the loop -------------------------------------------------------------------------

    async def _ticker(self) -> None:
        while not self._stopped:
            await asyncio.sleep(self._tick_interval)
            self._inbox.append(self._tick)
            self._wake.set()
            self.on_tick()

    async def _run(self) -> None:
        while not self._stopped:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Typically the disk (full, failing): the log may now hold a partial
                # write, so retrying could corrupt it. Stop at once, like etcd, and let the
                # supervisor restart the member once the disk is usable again.
                log.exception("raft loop failed; stopping this member")
                self._fail_stop()
                return

    async def _drain(self) -> None:
        while True:
            written = self._snapshots.take()
            if written is not None:
                await self._commit_snapshot(written)
            while self._inbox:
                op = self._inbox.popleft()
                try:
                    op()
                except RaftError as exc:
                    # An input the core refuses in its current role (a transfer asked of a
                    # follower, a read while no leader is known) is that caller's failure,
                    # never the member's.
                    log.info("raft refused an operation: %s", exc)
            if not self._rn.has_ready():
                return
            rd = self._rn.ready()
            await self._handle_ready(rd)
            self._rn.advance(rd)

    async def _handle_ready(self, rd: Ready) -> None:
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state.lead, rd.soft_state.state)
        # A leader may send before its own fsync (etcd does the same): its appends claim
        # nothing about its own disk, and follower acknowledgements are only stepped
        # after this Ready is persisted and advanced, so nothing commits on the leader's
        # unsynced log. Anything else (votes, a new term, a snapshot) is sent after.
        early = (
            self.role == StateType.LEADER
            and rd.snapshot is None
            and (rd.hard_state is None or rd.hard_state.term == self.term)
        )
        if early:
            self._transport.send(rd.messages)
        if rd.snapshot is not None and not rd.snapshot.is_empty:
            await asyncio.to_thread(self._storage.apply_snapshot, rd.snapshot)
        if rd.hard_state is not None or rd.entries or rd.must_sync:
            await asyncio.to_thread(self._storage.save, rd.hard_state, rd.entries, rd.must_sync)
        if rd.hard_state is not None:
            if rd.hard_state.term != self.term:
                logs.set_term(rd.hard_state.term)
            self.term = rd.hard_state.term
            self.commit = max(self.commit, rd.hard_state.commit)
            self._metrics.proposals_committed.set(self.commit)
        if not early:
            self._transport.send(rd.messages)
        if rd.snapshot is not None and not rd.snapshot.is_empty:
            self._restore(rd)
        if rd.committed_entries:
            started = time.perf_counter()
            for entry in rd.committed_entries:
                self._apply(entry)
            self._metrics.backend_commit.observe(time.perf_counter() - started)
            self._metrics.proposals_applied.set(self.applied)
        if rd.read_states:
            self._answer_reads(rd.read_states)
        self._release_applied_waiters()
        self._maybe_snapshot()

    def _answer_reads(self, read_states: tuple[ReadState, ...]) -> None:
        for rs in read_states:
            for fut in self._reads.answered(rs.request_ctx):
                if not fut.done():
                    fut.set_result(rs.index)
        if self._reads.due() and not self._read_round_queued:
            self._read_round_queued = True
            self._inbox.append(self._send_read_round)  # stepped after advance()

    def _on_soft_state(self, lead: int, state: StateType) -> None:
        old = self.leader
        self.role = state
        self.leader = lead
        self._metrics.has_leader.set(1 if lead != NONE else 0)
        self._metrics.is_leader.set(1 if state == StateType.LEADER else 0)
        if lead != old:
            if old != NONE:
                self._fail_proposals_in_flight()
            if lead != NONE:
                self._metrics.leader_changes.inc()
                for fut in self._leader_waiters:
                    if not fut.done():
                        fut.set_result(lead)
                self._leader_waiters.clear()
            log.info("leader is now %x (was %x)", lead, old, extra={"role": state.name})
            self.on_leader_change(old, lead)

    def _fail_proposals_in_flight(self) -> None:
        """The leader is gone: proposals waiting here may be lost with it (a follower's
        travel to the leader as messages that nobody acknowledges) or may still commit under
        the next leader. Their callers learn now, not at their timeout, that the outcome is
        unknown, which is the answer etcd gives for such a request."""
        for fut in self._waiters.values():
            if not fut.done():
                _fail(fut, errors.TIMEOUT_LEADER_FAIL)

    def _restore(self, rd: Ready) -> None:
        assert rd.snapshot is not None
        md = rd.snapshot.metadata
        self._sm.restore(rd.snapshot.data)
        self.applied = md.index
        self._snapshot_index = md.index
        self.conf_state = md.conf_state
        self.commit = max(self.commit, md.index)
        log.info("restored snapshot at index %d", md.index)

    def _apply(self, entry: Entry) -> None:
        if entry.index <= self.applied:
            return
        if entry.type == EntryType.CONF_CHANGE:
            self._apply_conf_change(entry)
        elif entry.data:
            request = internal_pb2.InternalRequest.FromString(entry.data)
            with tracing.entry_span("raft.apply", request.traceparent) as span:
                span.set_attribute("kvstore.member_id", f"{self.member_id:x}")
                span.set_attribute("raft.index", entry.index)
                result = self._sm.apply(request, entry.index, entry.term)
            fut = self._waiters.pop(request.id, None)
            if fut is not None and not fut.done():
                fut.set_result(result)
        self.applied = entry.index

    def _apply_conf_change(self, entry: Entry) -> None:
        cc = decode_conf_change(entry.data)
        context = internal_pb2.ConfChangeContext()
        if cc.context:
            context.ParseFromString(cc.context)
        if cc.type == ConfChangeType.REMOVE_NODE and cc.node_id != self.member_id:
            self._tell_removed_member(cc.node_id, entry.index)
        # Changes are validated before they are proposed; the core has the last word on
        # whether one is legal, and the member table follows whatever it applied.
        try:
            self.conf_state = self._rn.apply_conf_change(cc)
        except RaftError as exc:
            log.warning("conf change %s %x rejected: %s", cc.type.name, cc.node_id, exc)
            result = ApplyResult(error=errors.EtcdError(errors.MEMBER_NOT_FOUND.code, str(exc)))
        else:
            result = self._sm.apply_conf_change(cc, context, entry.index, entry.term)
        fut = self._waiters.pop(context.request_id, None)
        if fut is not None and not fut.done():
            fut.set_result(result)
        if (
            cc.type == ConfChangeType.REMOVE_NODE
            and cc.node_id == self.member_id
            and result.error is None
        ):
            log.warning("this member was removed from the cluster; stopping")
            self.on_removed()

    def _tell_removed_member(self, node_id: int, removal_index: int) -> None:
        """As leader, send a member being removed one last heartbeat carrying the commit
        index, so it applies its own removal and stops.

        Once the removal is applied the leader forgets the member and sends it nothing more;
        a learner never campaigns, so without this it could wait forever for a commit index
        it already has the entry for. The commit sent never exceeds what the member
        acknowledged, as Raft requires of every heartbeat.
        """
        if self.role != StateType.LEADER:
            return
        progress = self._rn.status().progress.get(node_id)
        if progress is None:
            return
        farewell = Message(
            MessageType.HEARTBEAT,
            to=node_id,
            from_=self.member_id,
            term=self.term,
            commit=min(progress.match, removal_index),
        )
        self._transport.send((farewell,))

    def _release_applied_waiters(self) -> None:
        while self._applied_waiters and self._applied_waiters[0][0] <= self.applied:
            _, _, fut = heapq.heappop(self._applied_waiters)
            if not fut.done():
                fut.set_result(None)

    def _maybe_snapshot(self) -> None:
        """Start a snapshot once ``--snapshot-count`` entries were applied since the last
        one; neither the event loop nor the log waits for it (see :mod:`.snapshots`)."""
        if self._snapshots.busy or self.applied - self._snapshot_index < self._snapshot_count:
            return
        term = self._storage.term(self.applied)
        self._snapshots.start(self._sm.snapshot_encoder(), self.applied, term, self.conf_state)

    def _fail_stop(self) -> None:
        """The disk failed under the log or a snapshot: stop driving the core at once."""
        self._stopped = True
        self.on_failed()

    async def _commit_snapshot(self, snap: Snapshot) -> None:
        """Make a written snapshot current and drop the log it covers (on the Raft loop,
        between two Readys, where the log is not being written)."""
        index = snap.metadata.index
        try:
            await asyncio.to_thread(self._storage.commit_snapshot, snap)
        except SnapshotOutOfDateError:
            return  # a newer snapshot became current while this one was written
        self._snapshot_index = index
        self._compact_log(index, min(SNAPSHOT_CATCH_UP_ENTRIES, self._snapshot_count))

    def _compact_log(self, index: int, keep: int) -> None:
        compact_to = index - keep
        if compact_to >= self._storage.first_index():
            self._storage.compact(compact_to)
        log.info("snapshot at index %d, log compacted to %d", index, compact_to)

    def _snapshot_now(self) -> None:
        if self.applied <= self._snapshot_index:
            return
        snap = self._storage.create_snapshot(self.applied, self.conf_state, self._sm.snapshot())
        self._snapshot_index = snap.metadata.index
        self._compact_log(self._snapshot_index, 0)

    def force_snapshot(self) -> None:
        """Snapshot now and drop the whole log, so a member added next receives a snapshot
        (the log alone would not tell it the bootstrap membership). Done in line, before
        the membership change queued after it: rare enough to pay for its pause."""
        self._enqueue(self._snapshot_now)

    def encode_conf_change(self, cc: ConfChange) -> bytes:
        """The codec's encoding of ``cc`` (for logging and size checks)."""
        return encode_conf_change(cc)
