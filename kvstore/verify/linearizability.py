"""A linearizability checker for register histories (Wing & Gong's search with Lowe's cache).

Linearizability is compositional (Herlihy & Wing), so each key is checked on its own. For
one key the search walks the history's invocation and completion events in time order and
tries to place each operation at a point between its invocation and completion where the
register model accepts it. When it meets a completion of an operation it has not placed,
the current prefix is impossible, so it backtracks. Lowe's improvement memoizes the pairs
(set of placed operations, register value) already explored, which turns the typical
exponential blow-up into something that checks thousands of operations in well under a
second.

An operation with an unknown outcome is given an infinitely late completion: it may take
effect at any point after its invocation, including never (placing it after everything
else is indistinguishable from never, since nothing observes it afterwards).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from kvstore.verify.history import History, Op, OpKind

DEFAULT_MAX_STEPS = 5_000_000
"""Search steps per key before the checker gives up and reports ``unknown``."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict for one key (or a whole history)."""

    linearizable: bool | None
    """True, False, or None when the search budget ran out."""
    key: str = ""
    detail: str = ""
    """For a violation: the longest placeable prefix and the operation that could not go."""


def _step(value: str | None, op: Op) -> tuple[bool, str | None]:
    """The register model: whether ``op`` is legal on ``value``, and the value after it."""
    if op.kind is OpKind.READ:
        return (op.unknown or op.value == value), value
    if op.kind is OpKind.WRITE:
        return True, op.value
    swapped = value == op.expected
    if op.ok is None:  # unknown outcome: whatever the register allows
        return True, (op.value if swapped else value)
    return op.ok == swapped, (op.value if swapped else value)


class _Node:
    """One event in the doubly linked event list. A call node points at its return node."""

    __slots__ = ("index", "is_call", "match", "next", "op", "prev", "time")

    def __init__(self, op: Op, index: int, time: float, is_call: bool) -> None:
        self.op = op
        self.index = index
        self.time = time
        self.is_call = is_call
        self.match: _Node | None = None
        self.prev: _Node | None = None
        self.next: _Node | None = None


def _event_list(ops: list[Op]) -> _Node:
    """Build the time-ordered event list behind a sentinel head node."""
    events: list[_Node] = []
    for i, op in enumerate(ops):
        call = _Node(op, i, op.invoked, True)
        ret = _Node(op, i, math.inf if op.completed is None else op.completed, False)
        call.match = ret
        events += [call, ret]
    # At equal times, returns go first: an operation that completed at t happened before
    # one invoked at t (the recorder's clock cannot order them otherwise).
    events.sort(key=lambda n: (n.time, n.is_call, n.index))
    head = (
        _Node(ops[0], -1, -math.inf, False)
        if ops
        else _Node(Op(0, OpKind.READ, "", 0, 0), -1, 0, False)
    )
    prev = head
    for node in events:
        prev.next = node
        node.prev = prev
        prev = node
    return head


def _lift(call: _Node) -> None:
    """Remove a call and its return from the list (the operation is placed)."""
    for node in (call, call.match):
        assert node is not None and node.prev is not None
        node.prev.next = node.next
        if node.next is not None:
            node.next.prev = node.prev


def _unlift(call: _Node) -> None:
    """Put a call and its return back where they were (undo :func:`_lift`)."""
    for node in (call.match, call):
        assert node is not None and node.prev is not None
        node.prev.next = node
        if node.next is not None:
            node.next.prev = node


def check_key(
    ops: Iterable[Op],
    key: str = "",
    *,
    initial: str | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> CheckResult:
    """Whether the operations on one register form a linearizable history."""
    # A read whose outcome is unknown constrains nothing; leave it out.
    placed_ops = [op for op in ops if not (op.kind is OpKind.READ and op.unknown)]
    if not placed_ops:
        return CheckResult(True, key)
    head = _event_list(placed_ops)
    value = initial
    linearized = 0  # bitset of placed operation indexes
    cache: set[tuple[int, str | None]] = {(0, initial)}
    stack: list[tuple[_Node, str | None]] = []
    best: list[Op] = []
    steps = 0
    entry = head.next
    while head.next is not None:
        steps += 1
        if steps > max_steps:
            return CheckResult(None, key, f"gave up after {max_steps} search steps")
        assert entry is not None
        if entry.is_call:
            legal, after = _step(value, entry.op)
            state = (linearized | (1 << entry.index), after)
            if legal and state not in cache:
                cache.add(state)
                stack.append((entry, value))
                linearized, value = state
                _lift(entry)
                if len(stack) > len(best):
                    best = [node.op for node, _ in stack]
                entry = head.next
            else:
                entry = entry.next
        else:
            # The earliest pending completion belongs to an operation not yet placed:
            # no placement of the current prefix works. Backtrack.
            if not stack:
                return CheckResult(False, key, _explain(best, placed_ops))
            call, value = stack.pop()
            linearized &= ~(1 << call.index)
            _unlift(call)
            entry = call.next
    return CheckResult(True, key)


def _explain(best: list[Op], ops: list[Op]) -> str:
    placed = set(map(id, best))
    rest = sorted((op for op in ops if id(op) not in placed), key=lambda op: op.invoked)
    lines = ["longest linearizable prefix:"]
    lines += [f"  {_describe(op)}" for op in best[-10:]]
    lines.append("cannot be placed next (first few):")
    lines += [f"  {_describe(op)}" for op in rest[:5]]
    return "\n".join(lines)


def _describe(op: Op) -> str:
    span = f"[{op.invoked:.6f}, {'?' if op.completed is None else f'{op.completed:.6f}'}]"
    if op.kind is OpKind.CAS:
        what = f"cas({op.expected!r} -> {op.value!r}) = {op.ok}"
    elif op.kind is OpKind.WRITE:
        what = f"write({op.value!r})"
    else:
        what = f"read() = {op.value!r}"
    return f"client {op.client} {span} {what}"


def check_history(history: History, *, max_steps: int = DEFAULT_MAX_STEPS) -> list[CheckResult]:
    """Check every key of ``history``; one result per key, violations first."""
    results = [check_key(history.for_key(k), k, max_steps=max_steps) for k in history.key_names()]
    return sorted(results, key=lambda r: (r.linearizable is not False, r.key))
