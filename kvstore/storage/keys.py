"""Key ranges with etcd's ``range_end`` rules, and the sorted key index they are read from.

``range_end`` rules (etcd v3):

- ``b""``: only ``key`` itself;
- ``b"\\0"``: every key ``>= key`` (and with ``key == b"\\0"`` too: every key);
- otherwise the half-open interval ``[key, range_end)``; :func:`prefix_end` gives the
  ``range_end`` that selects every key starting with a prefix.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

ALL = b"\0"


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key that starts with ``prefix``: the last byte
    below 0xff incremented, trailing 0xff bytes dropped; ``b"\\0"`` (no bound) if none."""
    b = bytearray(prefix)
    while b:
        if b[-1] < 0xFF:
            b[-1] += 1
            return bytes(b)
        b.pop()
    return ALL


def upper_bound(key: bytes, range_end: bytes) -> bytes | None:
    """The exclusive upper bound of a range; None when it has none."""
    if range_end == ALL:
        return None
    if not range_end:
        return key + b"\0"
    return range_end


def in_range(k: bytes, key: bytes, range_end: bytes) -> bool:
    """Whether ``k`` lies in the range given by ``key`` and ``range_end``."""
    if not range_end:
        return k == key
    if range_end == ALL:
        return k >= key
    return key <= k < range_end


def ranges_overlap(a: tuple[bytes, bytes], b: tuple[bytes, bytes]) -> bool:
    """Whether two (key, range_end) ranges share a key."""
    a_lo, a_hi = a[0], upper_bound(*a)
    b_lo, b_hi = b[0], upper_bound(*b)
    return (a_hi is None or b_lo < a_hi) and (b_hi is None or a_lo < b_hi)


class SortedKeys:
    """A sorted set of byte strings with O(log n) search and cheap insertion.

    A plain sorted list pays O(n) memmove per insertion, which dominates at millions of
    keys; this keeps chunks of at most ``2 * LOAD`` keys plus each chunk's largest key,
    so an insertion moves at most a chunk. Iteration over a range costs one bisect plus
    the keys yielded.
    """

    LOAD = 512

    def __init__(self) -> None:
        self._chunks: list[list[bytes]] = []
        self._maxes: list[bytes] = []
        self._len = 0

    @classmethod
    def from_sorted(cls, keys: list[bytes]) -> SortedKeys:
        """The set of ``keys``, which must be strictly ascending (a snapshot's order)."""
        made = cls()
        made._chunks = [keys[i : i + cls.LOAD] for i in range(0, len(keys), cls.LOAD)]
        made._maxes = [chunk[-1] for chunk in made._chunks]
        made._len = len(keys)
        return made

    def __len__(self) -> int:
        return self._len

    def add(self, key: bytes) -> None:
        """Insert ``key`` (no-op if present)."""
        if not self._chunks:
            self._chunks.append([key])
            self._maxes.append(key)
            self._len = 1
            return
        i = bisect_left(self._maxes, key)
        if i == len(self._maxes):
            i -= 1
        chunk = self._chunks[i]
        j = bisect_left(chunk, key)
        if j < len(chunk) and chunk[j] == key:
            return
        chunk.insert(j, key)
        self._len += 1
        self._maxes[i] = chunk[-1]
        if len(chunk) > 2 * self.LOAD:
            half = chunk[self.LOAD :]
            del chunk[self.LOAD :]
            self._chunks.insert(i + 1, half)
            self._maxes[i] = chunk[-1]
            self._maxes.insert(i + 1, half[-1])

    def remove(self, key: bytes) -> None:
        """Delete ``key`` (no-op if absent)."""
        i = bisect_left(self._maxes, key)
        if i == len(self._maxes):
            return
        chunk = self._chunks[i]
        j = bisect_left(chunk, key)
        if j == len(chunk) or chunk[j] != key:
            return
        del chunk[j]
        self._len -= 1
        if chunk:
            self._maxes[i] = chunk[-1]
        else:
            del self._chunks[i]
            del self._maxes[i]

    def irange(self, lo: bytes, hi: bytes | None) -> Iterator[bytes]:
        """Keys ``k`` with ``lo <= k < hi`` (no upper bound when ``hi`` is None), ascending."""
        chunks = self._chunks
        ci = bisect_left(self._maxes, lo)
        if ci == len(chunks):
            return
        start = bisect_left(chunks[ci], lo)
        while ci < len(chunks):
            chunk = chunks[ci]
            for j in range(start, len(chunk)):
                k = chunk[j]
                if hi is not None and k >= hi:
                    return
                yield k
            ci += 1
            start = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            yield from chunk
