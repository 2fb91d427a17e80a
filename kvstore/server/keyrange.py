"""etcd's key-range convention, in one place.

A request names ``key`` and ``range_end``: an empty ``range_end`` means just ``key``;
``b"\\0"`` means every key >= ``key``; otherwise the half-open range ``[key, range_end)``
(a prefix ``p`` is the range ``[p, prefix_end(p))``). ``key == b"\\0"`` with
``range_end == b"\\0"`` means every key.
"""

from __future__ import annotations


def in_range(candidate: bytes, key: bytes, range_end: bytes) -> bool:
    """Whether ``candidate`` falls in the range named by ``key`` and ``range_end``."""
    if not range_end:
        return candidate == key
    if range_end == b"\0":
        return candidate >= key
    return key <= candidate < range_end


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with ``prefix`` (etcd's GetPrefixRangeEnd).

    ``b"\\0"`` (all keys) when the prefix is empty or all ``0xff`` bytes.
    """
    buf = bytearray(prefix)
    for i in range(len(buf) - 1, -1, -1):
        if buf[i] < 0xFF:
            buf[i] += 1
            return bytes(buf[: i + 1])
    return b"\0"
