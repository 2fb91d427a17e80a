"""Concurrent clients that record what they saw: reads, writes and compare-and-set on a few
keys, plus watchers that record every event they receive.

The workers use the project's :class:`~kvstore.client.Client` as an application would. It
resends a read after any failure, and a write only after an error that proves the write was
not applied (no connection could be made; the member had no leader, was not the leader,
saw the leader change before proposing, or was stopping). The workload takes the same
errors as proof: such an operation is left out of the history. If the server ever applied
a write it reported that way, the history would hold a value no recorded client wrote, and
the checks would fail, so the fault tests hold the client and server to that promise. Any
other error makes the outcome unknown, and the worker continues under a new client id, as
a crashed client process would in Jepsen.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from kvstore.api.gen.etcdserverpb import rpc_pb2
from kvstore.client import Client, ClientError
from kvstore.verify.history import History, Op, OpKind

DEFAULT_OP_TIMEOUT_S = 2.0
FAILURE_BACKOFF_S = 0.05
"""Pause after a failed operation, so a worker does not spin against a member that is down."""
CLIENTS_PER_WORKER = 1000
"""Client ids of worker w are w*1000, w*1000+1, ... (a new one after each unknown outcome)."""

_NEVER_APPLIED = (
    "failed to connect",
    "connection refused",
    "etcdserver: no leader",
    "etcdserver: not leader",
    "etcdserver: leader changed",
    "etcdserver: server stopped",
)


def never_applied(exc: ClientError) -> bool:
    """Whether an error proves the request took no effect (it never reached a leader)."""
    details = exc.details.lower()
    return any(marker in details for marker in _NEVER_APPLIED)


def cas_request(key: bytes, expected: str | None, new: str) -> rpc_pb2.TxnRequest:
    """A Txn that writes ``new`` if the key holds ``expected`` (absent when None)."""
    if expected is None:
        compare = rpc_pb2.Compare(
            key=key,
            result=rpc_pb2.Compare.EQUAL,
            target=rpc_pb2.Compare.VERSION,
            version=0,
        )
    else:
        compare = rpc_pb2.Compare(
            key=key,
            result=rpc_pb2.Compare.EQUAL,
            target=rpc_pb2.Compare.VALUE,
            value=expected.encode(),
        )
    put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=new.encode()))
    return rpc_pb2.TxnRequest(compare=[compare], success=[put])


@dataclass(frozen=True)
class WorkloadConfig:
    """What the clients do."""

    prefix: str = "/jepsen/"
    keys: int = 4
    workers: int = 5
    op_timeout: float = DEFAULT_OP_TIMEOUT_S
    read_ratio: float = 0.4
    write_ratio: float = 0.3
    """The rest are compare-and-sets."""
    think_time: float = 0.01
    """Upper bound of the random pause between two operations of a worker."""

    key_epoch: float = 0.0
    """When positive, clients move to fresh keys every ``key_epoch`` seconds, so that the
    history of one key (and the checker's search) stays bounded in long soaks."""

    def key(self, i: int, epoch: int = 0) -> str:
        return f"{self.prefix}k{i}" if epoch == 0 else f"{self.prefix}e{epoch}-k{i}"


@dataclass
class Worker:
    """One sequential client; ``client`` changes after every unknown outcome."""

    index: int
    endpoints: Sequence[str]
    config: WorkloadConfig
    history: History
    rng: random.Random
    client: int = 0
    seq: int = 0
    started: float = field(default_factory=time.monotonic)
    seen: dict[str, str | None] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.client = self.index * CLIENTS_PER_WORKER

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    async def run(self, stop: asyncio.Event) -> None:
        """Run operations until ``stop`` is set."""
        async with Client(self.endpoints, timeout=self.config.op_timeout) as cl:
            while not stop.is_set():
                await self.one(cl)
                await asyncio.sleep(self.rng.uniform(0, self.config.think_time))

    async def one(self, cl: Client) -> None:
        """Invoke one random operation and record it."""
        cfg = self.config
        epoch = int((time.monotonic() - self.started) // cfg.key_epoch) if cfg.key_epoch else 0
        key = cfg.key(self.rng.randrange(cfg.keys), epoch)
        roll = self.rng.random()
        self.seq += 1
        new = f"w{self.client}-{self.seq}"
        if roll < cfg.read_ratio:
            kind = OpKind.READ
        elif roll < cfg.read_ratio + cfg.write_ratio:
            kind = OpKind.WRITE
        else:
            kind = OpKind.CAS
        expected = self.seen.get(key)
        invoked = time.monotonic()
        try:
            if kind is OpKind.READ:
                rresp = await cl.get(key.encode())
                value = rresp.kvs[0].value.decode() if rresp.kvs else None
                op = Op(self.client, kind, key, invoked, time.monotonic(), value=value,
                        revision=rresp.header.revision)  # fmt: skip
                self.seen[key] = value
            elif kind is OpKind.WRITE:
                presp = await cl.put(key.encode(), new.encode())
                op = Op(self.client, kind, key, invoked, time.monotonic(), value=new,
                        revision=presp.header.revision)  # fmt: skip
                self.seen[key] = new
            else:
                tresp = await cl.txn(cas_request(key.encode(), expected, new))
                op = Op(self.client, kind, key, invoked, time.monotonic(), value=new,
                        expected=expected, ok=tresp.succeeded,
                        revision=tresp.header.revision)  # fmt: skip
                if tresp.succeeded:
                    self.seen[key] = new
        except ClientError as exc:
            if never_applied(exc):
                self._count("failed")
                await asyncio.sleep(FAILURE_BACKOFF_S)
                return
            self._count("unknown")
            if kind is not OpKind.READ:
                self.history.add(
                    Op(
                        self.client,
                        kind,
                        key,
                        invoked,
                        None,
                        value=new,
                        expected=expected if kind is OpKind.CAS else None,
                    )
                )
            self.client += 1
            await asyncio.sleep(FAILURE_BACKOFF_S)
            return
        self._count("ok")
        self.history.add(op)


@dataclass(frozen=True, slots=True)
class Event:
    """One watch event as a watcher received it."""

    revision: int
    key: str
    value: str | None
    """None for a delete."""


@dataclass
class Watcher:
    """Watches the workload's prefix from revision 1 and records every event, resuming
    (through the project client's own resume, then its own) after broken streams."""

    name: str
    endpoints: Sequence[str]
    prefix: str
    events: list[Event] = field(default_factory=list)
    restarts: int = 0

    @property
    def last_revision(self) -> int:
        return self.events[-1].revision if self.events else 0

    async def run(self, stop: asyncio.Event) -> None:
        """Record events until ``stop`` is set."""
        async with Client(self.endpoints, timeout=5) as cl:
            consumer = asyncio.create_task(self._consume(cl))
            await stop.wait()
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer

    async def _consume(self, cl: Client) -> None:
        while True:
            stream = cl.watch(
                self.prefix.encode(), prefix=True, start_revision=self.last_revision + 1
            )
            try:
                async for resp in stream:
                    for ev in resp.events:
                        value = (
                            None if ev.type == ev.DELETE else ev.kv.value.decode(errors="replace")
                        )
                        self.events.append(Event(ev.kv.mod_revision, ev.kv.key.decode(), value))
            except ClientError:
                self.restarts += 1
                await asyncio.sleep(0.2)
