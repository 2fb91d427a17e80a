"""After the faults: does every member serve again?

The history checks judge safety (nothing wrong was ever answered). A cluster can pass them
and still be broken for its users: a member whose linearizable reads wait forever answers
nothing wrong. The final reads of a run go through a client with every endpoint, which
fails over to a member that answers, so they cannot see it. This check asks each member on
its own, once every fault is undone and every member runs, for the three things a client
needs: a linearizable read, a write, and a watch event for that write delivered by the
same member. Each must come within ``bound`` seconds, or the run fails.

The keys live under :data:`PREFIX`, outside the workload's prefix, so the writes made here
do not enter the histories or event logs the other checks read.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field

from kvstore.client import Client, ClientError

__all__ = ["BOUND_S", "PREFIX", "MemberLiveness", "check_member"]

BOUND_S = 10.0
"""How long each member may take to serve a read, a write and a watch event."""
PREFIX = "/liveness/"
_ATTEMPT_S = 2.0
"""One attempt's deadline: a member that does not answer is asked again, as an
application's client would."""


@dataclass
class MemberLiveness:
    """When (seconds after the check started) a member first served each thing, and the
    last error while it did not."""

    name: str
    read: float | None = None
    write: float | None = None
    watch: float | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return None not in (self.read, self.write, self.watch)

    def failure(self, bound: float) -> str | None:
        """The violation, or None when the member served everything in time."""
        if self.ok:
            return None
        missing = [k for k in ("read", "write", "watch") if getattr(self, k) is None]
        last = self.errors[-1] if self.errors else "no answer"
        return (
            f"member {self.name} did not serve a linearizable {', '.join(missing)} within "
            f"{bound:.0f} s after every fault was undone (last error: {last})"
        )

    def figures(self) -> str:
        def s(v: float | None) -> str:
            return "-" if v is None else f"{v:.2f}s"

        return f"{self.name} read {s(self.read)} write {s(self.write)} watch {s(self.watch)}"


async def check_member(
    name: str, endpoint: str, tag: str, bound: float = BOUND_S
) -> MemberLiveness:
    """Ask the member at ``endpoint`` alone for a linearizable read, a write and the
    watch event of that write, each retried until ``bound`` seconds have passed."""
    result = MemberLiveness(name)
    started = time.monotonic()
    deadline = started + bound
    key = f"{PREFIX}{tag}/{name}".encode()

    def left() -> float:
        return deadline - time.monotonic()

    async def attempt(what: str, call: Awaitable[object]) -> bool:
        try:
            async with asyncio.timeout(max(0.01, min(_ATTEMPT_S, left()))):
                await call
        except (ClientError, TimeoutError) as exc:
            result.errors.append(f"{what}: {exc!r}")
            await asyncio.sleep(min(0.1, max(0.0, left())))
            return False
        return True

    async with Client([endpoint], timeout=_ATTEMPT_S, rounds=1) as cl:
        while result.read is None and left() > 0:
            if await attempt("read", cl.get(key)):
                result.read = time.monotonic() - started
        value = f"alive-{time.monotonic_ns()}".encode()
        events: asyncio.Queue[bytes] = asyncio.Queue()
        created = asyncio.Event()
        start = [0]
        watch = asyncio.create_task(
            _watch(cl, key, start=start, events=events, created=created, result=result)
        )
        try:
            while not created.is_set() and left() > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.01, min(0.5, left()))):
                        await created.wait()
            while created.is_set() and result.write is None and left() > 0:
                put = asyncio.ensure_future(cl.put(key, value))
                if await attempt("write", put):
                    start[0] = put.result().header.revision
                    result.write = time.monotonic() - started
            while result.write is not None and result.watch is None and left() > 0:
                try:
                    async with asyncio.timeout(max(0.01, left())):
                        got = await events.get()
                except TimeoutError:
                    result.errors.append("watch: no event for the write")
                    break
                if got == value:
                    result.watch = time.monotonic() - started
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
    return result


async def _watch(
    cl: Client,
    key: bytes,
    *,
    start: list[int],
    events: asyncio.Queue[bytes],
    created: asyncio.Event,
    result: MemberLiveness,
) -> None:
    """Watch ``key`` on the client's one endpoint, again if the stream breaks (from the
    write's revision once it is known, so its event cannot slip between two streams)."""
    while True:
        try:
            async for resp in cl.watch(key, start_revision=start[0]):
                if resp.created:
                    created.set()
                for ev in resp.events:
                    events.put_nowait(ev.kv.value)
        except ClientError as exc:
            result.errors.append(f"watch: {exc!r}")
        await asyncio.sleep(0.1)
