"""The load generator: N concurrent requests against any etcd v3 endpoints, through the
project's client, so this store and etcd are measured by the same code.

Workloads (keys are 8 bytes spread uniformly over ``key_space``; values ``value_size``
bytes):

- ``put``: one Put per operation;
- ``get``: a linearizable Range of one key;
- ``get-serializable``: a serializable Range (served from the member's own state);
- ``mixed``: 90% linearizable gets, 10% puts;
- ``txn-cas``: a Txn that compares the key's value and writes it when it matches.

Read and CAS workloads need the keys to exist: :func:`preload` writes the whole key space
in transactions of ``PRELOAD_BATCH`` puts.
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from kvstore.api.gen.etcdserverpb import rpc_pb2
from kvstore.bench.stats import Result
from kvstore.client import Client, ClientError

PRELOAD_BATCH = 128
"""Puts per preload transaction (etcd's default --max-txn-ops)."""
PRELOAD_TIMEOUT_S = 60.0
PRELOAD_ATTEMPTS = 5
"""A big load can stall a member for seconds (a snapshot of the whole store); batches are
retried rather than failing the run."""
DEFAULT_KEY_SPACE = 10_000
DEFAULT_VALUE_SIZE = 256
KEY_SIZE = 8


class Workload(enum.StrEnum):
    PUT = "put"
    GET = "get"
    GET_SERIALIZABLE = "get-serializable"
    MIXED = "mixed"
    TXN_CAS = "txn-cas"


@dataclass(frozen=True)
class LoadSpec:
    """What to run: a duration (seconds) or an operation count, whichever is set."""

    workload: Workload
    concurrency: int
    duration: float = 0.0
    count: int = 0
    key_space: int = DEFAULT_KEY_SPACE
    value_size: int = DEFAULT_VALUE_SIZE
    seed: int = 1


def key_of(i: int) -> bytes:
    """The 8-byte key number ``i``."""
    return f"{i:0{KEY_SIZE}d}".encode()[-KEY_SIZE:]


def value_of(size: int) -> bytes:
    return b"v" * size


def _cas(key: bytes, value: bytes) -> rpc_pb2.TxnRequest:
    cmp = rpc_pb2.Compare(
        key=key, result=rpc_pb2.Compare.EQUAL, target=rpc_pb2.Compare.VALUE, value=value
    )
    put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value))
    return rpc_pb2.TxnRequest(compare=[cmp], success=[put])


def batch_put(keys: Sequence[bytes], value: bytes) -> rpc_pb2.TxnRequest:
    """One transaction that writes every key in ``keys``."""
    ops = [rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=k, value=value)) for k in keys]
    return rpc_pb2.TxnRequest(success=ops)


def make_clients(endpoints: Sequence[str], concurrency: int, timeout: float = 10.0) -> list[Client]:
    """One client per endpoint (each pinned to it, failing over to the others), at most
    ``concurrency`` of them: requests spread over the members as etcd's benchmark does."""
    n = max(1, min(len(endpoints), concurrency))
    rotated = [list(endpoints[i:]) + list(endpoints[:i]) for i in range(n)]
    return [Client(eps, timeout=timeout) for eps in rotated]


async def preload(
    endpoints: Sequence[str], keys: int, value_size: int, first: int = 0, parallel: int = 8
) -> None:
    """Write keys ``first .. first+keys-1`` in batches, ``parallel`` batches at a time."""
    clients = make_clients(endpoints, parallel, timeout=PRELOAD_TIMEOUT_S)
    value = value_of(value_size)
    starts = list(range(first, first + keys, PRELOAD_BATCH))
    queue: asyncio.Queue[int] = asyncio.Queue()
    for s in starts:
        queue.put_nowait(s)

    async def worker(cl: Client) -> None:
        while not queue.empty():
            s = queue.get_nowait()
            end = min(s + PRELOAD_BATCH, first + keys)
            request = batch_put([key_of(i) for i in range(s, end)], value)
            for attempt in range(PRELOAD_ATTEMPTS):
                try:
                    await cl.txn(request)  # the same puts again: harmless if both apply
                    break
                except ClientError:
                    if attempt == PRELOAD_ATTEMPTS - 1:
                        raise

    try:
        await asyncio.gather(*(worker(clients[i % len(clients)]) for i in range(parallel)))
    finally:
        for cl in clients:
            await cl.close()


async def run_load(endpoints: Sequence[str], spec: LoadSpec, system: str = "") -> Result:
    """Run one workload and return its figures."""
    clients = make_clients(endpoints, spec.concurrency)
    value = value_of(spec.value_size)
    latencies: list[float] = []
    errors = 0
    remaining = spec.count
    deadline = 0.0

    async def one(cl: Client, rng: random.Random) -> None:
        key = key_of(rng.randrange(spec.key_space))
        wl = spec.workload
        if wl is Workload.MIXED:
            wl = Workload.PUT if rng.random() < 0.1 else Workload.GET
        if wl is Workload.PUT:
            await cl.put(key, value)
        elif wl is Workload.GET:
            await cl.get(key)
        elif wl is Workload.GET_SERIALIZABLE:
            await cl.get(key, serializable=True)
        else:
            await cl.txn(_cas(key, value))

    async def worker(i: int) -> None:
        nonlocal errors, remaining
        cl = clients[i % len(clients)]
        rng = random.Random(spec.seed * 100_003 + i)  # noqa: S311 (load, not secrets)
        while True:
            if spec.count:
                if remaining <= 0:
                    return
                remaining -= 1
            elif time.monotonic() >= deadline:
                return
            t0 = time.perf_counter()
            try:
                await one(cl, rng)
            except ClientError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - t0)

    try:
        started = time.monotonic()
        deadline = started + spec.duration
        await asyncio.gather(*(worker(i) for i in range(spec.concurrency)))
        seconds = time.monotonic() - started
    finally:
        for cl in clients:
            await cl.close()
    return Result.from_latencies(
        system, spec.workload.value, spec.concurrency, latencies, errors=errors, seconds=seconds
    )
