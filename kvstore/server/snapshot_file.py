"""The file ``etcdctl snapshot save`` writes: layout and checks (pure).

``"KVSNAP01" | length (u64 big-endian) | server state | zero padding to a multiple of 512
bytes | SHA-256 of everything before it``. etcd clients check that a snapshot ends in a
SHA-256 after a 512-byte aligned body (etcd's own files are aligned database pages), so the
layout keeps that shape; the length lets a reader drop the padding.
"""

from __future__ import annotations

import hashlib

MAGIC = b"KVSNAP01"
_ALIGN = 512


class SnapshotFileError(ValueError):
    """The bytes are not a kvstore snapshot, or were damaged."""


def encode(state: bytes) -> bytes:
    """The file bytes for a serialized server state."""
    body = MAGIC + len(state).to_bytes(8, "big") + state
    body += b"\0" * (-len(body) % _ALIGN)
    return body + hashlib.sha256(body).digest()


def decode(data: bytes) -> bytes:
    """The server state inside a snapshot file; SnapshotFileError if damaged."""
    body, digest = data[:-32], data[-32:]
    if len(data) < 48 or hashlib.sha256(body).digest() != digest or not body.startswith(MAGIC):
        raise SnapshotFileError("not a kvstore snapshot, or damaged")
    size = int.from_bytes(body[8:16], "big")
    if 16 + size > len(body):
        raise SnapshotFileError("snapshot length exceeds the file")
    return body[16 : 16 + size]
