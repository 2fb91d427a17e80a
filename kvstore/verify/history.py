"""A history: every operation clients invoked, with what they saw.

Times are any monotonically increasing numbers from one clock (the recorder's), so that
"a completed before b was invoked" is a comparison of two numbers. An operation whose
outcome is unknown (the client timed out, the connection broke) has ``completed = None``:
it may have taken effect at any moment after its invocation, or never.
"""

from __future__ import annotations

import enum
import json
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path


class OpKind(enum.StrEnum):
    """Operations on a single-key register."""

    READ = "read"
    """Output: the value read, or None when the key is absent."""
    WRITE = "write"
    """Input: the value written. Output: None."""
    CAS = "cas"
    """Input: (expected, new). Output: True if it swapped, False if not, None if unknown."""


@dataclass(frozen=True, slots=True)
class Op:
    """One operation as a client saw it."""

    client: int
    kind: OpKind
    key: str
    invoked: float
    completed: float | None
    value: str | None = None
    """WRITE: the value written; READ: the value read (None = absent)."""
    expected: str | None = None
    """CAS only: the value compared against."""
    ok: bool | None = None
    """CAS only: whether it swapped (None when the outcome is unknown)."""
    revision: int | None = None
    """The store revision in the response header (None when unknown or not recorded)."""

    @property
    def unknown(self) -> bool:
        """Whether the client never learned the outcome."""
        return self.completed is None


@dataclass
class History:
    """A thread-safe recorder of operations, saved and loaded as JSON for reproduction."""

    ops: list[Op] = field(default_factory=list)
    meta: dict[str, object] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, op: Op) -> None:
        """Record a finished (or given-up) operation."""
        with self._lock:
            self.ops.append(op)

    def key_names(self) -> list[str]:
        """The keys that occur in the history, sorted."""
        return sorted({op.key for op in self.ops})

    def for_key(self, key: str) -> list[Op]:
        """The operations on ``key``, in invocation order."""
        return sorted((op for op in self.ops if op.key == key), key=lambda op: op.invoked)

    def save(self, path: Path) -> None:
        """Write the history and its metadata (seed, fault schedule) as JSON."""
        with self._lock:
            data = {"meta": self.meta, "ops": [asdict(op) for op in self.ops]}
        path.write_text(json.dumps(data, indent=1, sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> History:
        """Read a history written by :meth:`save`."""
        data = json.loads(path.read_text())
        ops = [replace(Op(**raw), kind=OpKind(raw["kind"])) for raw in data["ops"]]
        return cls(ops=ops, meta=dict(data.get("meta", {})))
