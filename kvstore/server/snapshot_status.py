"""What ``snapshot status`` shows of an etcd database: etcdctl's hash, revision, key count
and size, computed the way etcdctl computes them (pure).

The hash is a CRC-32C (Castagnoli) over every bucket's name followed by its keys and values,
buckets and keys in order; the revision is the main revision of the last ``key`` bucket
entry; the key count counts the entries of every bucket; the size is the database's
high-water mark times its page size. Equal figures from ``etcdctl snapshot status`` and
from here mean the same bytes were read.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import crc32c as _crc32c

from kvstore.server.etcd_snapshot import KEY, EtcdSnapshotError, parse_revision_key
from kvstore.server.snapshot_file import SnapshotFileError
from kvstore.storage.bbolt import BboltError, Database


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C of ``data``, continuing from ``crc`` (the crc32c package: hardware speed)."""
    return int(_crc32c.crc32c(data, crc))


@dataclass(frozen=True, slots=True)
class Status:
    """etcdctl's four figures."""

    hash: int
    revision: int
    total_key: int
    total_size: int

    def as_json(self) -> dict[str, int]:
        """etcdctl's ``-w json`` fields."""
        return {
            "hash": self.hash,
            "revision": self.revision,
            "totalKey": self.total_key,
            "totalSize": self.total_size,
        }

    def simple(self) -> str:
        """etcdctl's default line."""
        return f"{self.hash:x}, {self.revision}, {self.total_key}, {_bytes(self.total_size)}"

    def table(self) -> str:
        """etcdctl's ``-w table``."""
        cells = [f"{self.hash:x}", str(self.revision), str(self.total_key), _bytes(self.total_size)]
        heads = ["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"]
        widths = [max(len(h), len(c)) + 2 for h, c in zip(heads, cells, strict=True)]
        rule = "+" + "+".join("-" * w for w in widths) + "+"

        def row(values: list[str], align: str) -> str:
            parts = [
                v.center(w) if align == "c" else " " + v.rjust(w - 2) + " "
                for v, w in zip(values, widths, strict=True)
            ]
            return "|" + "|".join(parts) + "|"

        return "\n".join([rule, row(heads, "c"), rule, row(cells, "r"), rule])


def _bytes(n: int) -> str:
    """A size as etcdctl prints it (SI units, as go-humanize does)."""
    if n < 10:
        return f"{n} B"
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]
    e = min(math.floor(math.log(n, 1000)), len(units) - 1)
    value = math.floor(n / 1000**e * 10 + 0.5) / 10
    return f"{value:.1f} {units[e]}" if value < 10 else f"{value:.0f} {units[e]}"


def status(db_bytes: bytes | memoryview) -> Status:
    """The status of a bare database (the hash trailer already removed)."""
    try:
        db = Database(db_bytes)
        errors = db.check()
        if errors:
            raise SnapshotFileError(
                f"snapshot file integrity check failed. {len(errors)} errors found: "
                + "; ".join(errors[:5])
            )
        crc = 0
        revision = total = 0
        for name, bucket in db.buckets():
            crc = crc32c(name, crc)
            for key, value in bucket.items():
                crc = crc32c(key, crc)
                if isinstance(value, bytes):
                    crc = crc32c(value, crc)
                if name == KEY:
                    revision = parse_revision_key(key)[0]
                total += 1
    except (BboltError, EtcdSnapshotError) as exc:
        raise SnapshotFileError(str(exc)) from None
    except struct.error as exc:
        raise SnapshotFileError(f"database damaged: {exc}") from None
    return Status(crc, revision, total, db.size)
