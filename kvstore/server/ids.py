"""Deterministic member and cluster ids.

Every member of a new cluster must compute the same ids from the same flags, without talking
to the others, so ids are hashes:

- member id: the first 8 bytes (big-endian) of SHA-256 over the member's sorted peer URLs
  and the ``--initial-cluster-token``, joined by newlines; a member added at run time also
  hashes a salt (the leader's applied index), so re-adding the same URLs after a removal
  yields a new id, as Raft requires (a removed id may never come back);
- cluster id: the first 8 bytes of SHA-256 over the sorted initial member ids.

Zero is reserved by Raft for "nobody"; a hash that happens to be zero is mapped to 1.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

_MASK = (1 << 64) - 1


def _u64(digest: bytes) -> int:
    value = int.from_bytes(digest[:8], "big") & _MASK
    return value or 1


def member_id(peer_urls: Iterable[str], token: str, salt: str = "") -> int:
    """The id of the member reachable at ``peer_urls`` in the cluster named ``token``."""
    parts = sorted(peer_urls)
    parts.append(token)
    if salt:
        parts.append(salt)
    return _u64(hashlib.sha256("\n".join(parts).encode()).digest())


def cluster_id(member_ids: Iterable[int]) -> int:
    """The id of a cluster bootstrapped with ``member_ids``."""
    data = b"".join(i.to_bytes(8, "big") for i in sorted(member_ids))
    return _u64(hashlib.sha256(data).digest())


def hex_id(value: int) -> str:
    """The way etcd prints ids: lower-case hex without padding."""
    return f"{value:x}"
