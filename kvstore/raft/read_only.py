"""Pending ReadIndex requests of a leader waiting for a heartbeat quorum.

A read may be served at index ``i`` once the leader (a) has committed an entry of its own
term, (b) recorded its commit index ``i`` when the request arrived, and (c) heard from a
majority *after* that (the heartbeat carrying the request context comes back), proving it
was still the leader at that moment (thesis §6.4).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .types import Message


@dataclass(slots=True)
class ReadIndexStatus:
    """One pending request: the message to answer, the commit index when it arrived,
    and who acknowledged a heartbeat carrying its context."""

    req: Message
    index: int
    acks: set[int] = field(default_factory=set)


class ReadOnly:
    """Requests in arrival order, keyed by context (contexts must be unique)."""

    __slots__ = ("pending", "queue")

    def __init__(self) -> None:
        self.pending: dict[bytes, ReadIndexStatus] = {}
        self.queue: list[bytes] = []

    def add_request(self, index: int, req: Message) -> None:
        """Track ``req`` (its first entry's data is the context) at commit ``index``."""
        ctx = req.context
        if ctx in self.pending:
            return
        self.pending[ctx] = ReadIndexStatus(req=req, index=index)
        self.queue.append(ctx)

    def recv_ack(self, node: int, ctx: bytes) -> set[int] | None:
        """A heartbeat response from ``node`` carried ``ctx``; returns who acked so far."""
        rs = self.pending.get(ctx)
        if rs is None:
            return None
        rs.acks.add(node)
        return rs.acks

    def advance(self, ctx: bytes) -> list[ReadIndexStatus]:
        """``ctx`` reached quorum: it and every earlier request are confirmed (a later
        heartbeat quorum confirms leadership for everything that arrived before it)."""
        if ctx not in self.pending:
            return []
        i = self.queue.index(ctx) + 1
        done = [self.pending.pop(c) for c in self.queue[:i]]
        del self.queue[:i]
        return done

    def last_pending_ctx(self) -> bytes:
        """The context of the newest request, or b"" (sent with heartbeats)."""
        return self.queue[-1] if self.queue else b""

    def reset(self) -> None:
        """Drop everything (on leadership loss)."""
        self.pending.clear()
        self.queue.clear()
