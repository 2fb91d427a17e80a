"""Storage benchmarks: WAL throughput with fsync, recovery time, MVCC memory per key.

Run ``python -m kvstore.storage.bench`` (or ``scripts/bench-storage``). It prints figures;
it asserts nothing. ``--dir`` chooses where the log is written (the default is a
temporary directory, which must sit on the disk you mean to measure, not on tmpfs).
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from kvstore.raft.types import Entry, HardState

from .disk_storage import DiskStorage
from .mvcc import MvccStore
from .mvcc_types import PutRequest
from .wal import Wal


def wal_appends_per_second(directory: Path, batch: int, seconds: float, size: int) -> float:
    """Entries of ``size`` data bytes appended per second when every batch of ``batch``
    entries is fsynced before the next one starts."""
    shutil.rmtree(directory, ignore_errors=True)
    wal, _ = Wal.open(directory)
    data = os.urandom(size)
    index = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        ents = [Entry(1, index + i + 1, data=data) for i in range(batch)]
        index += batch
        wal.save(HardState(1, 1, index), ents, sync=True)
    elapsed = time.perf_counter() - started
    wal.close()
    return index / elapsed


def recovery_seconds(
    directory: Path, entries: int, size: int
) -> tuple[tuple[float, float], tuple[float, float], int]:
    """Write ``entries`` entries (synced every 1,000), then time a cold open: the bare
    WAL replay and the full ``DiskStorage.open``, each as (wall s, CPU s). CPU time is
    reported too because wall time on a shared machine mostly measures the neighbours.
    Returns (wal times, storage times, bytes on disk)."""
    shutil.rmtree(directory, ignore_errors=True)
    wal, _ = Wal.open(directory / "wal")
    data = os.urandom(size)
    for start in range(1, entries + 1, 1000):
        ents = [Entry(1, i, data=data) for i in range(start, min(start + 1000, entries + 1))]
        wal.save(HardState(1, 1, ents[-1].index), ents, sync=True)
    wal.close()
    on_disk = sum(p.stat().st_size for p in (directory / "wal").iterdir())
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    wal, replay = Wal.open(directory / "wal")
    t_wal = (time.perf_counter() - t0, time.process_time() - c0)
    assert len(replay.entries) == entries
    wal.close()
    del replay
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    storage = DiskStorage.open(directory)
    t_storage = (time.perf_counter() - t0, time.process_time() - c0)
    assert storage.last_index() == entries
    storage.close()
    return t_wal, t_storage, on_disk


def mvcc_bytes_per_key(keys: int, value_size: int) -> tuple[float, float]:
    """Python heap bytes per key (tracemalloc) after ``keys`` puts of 16-byte keys and
    distinct ``value_size``-byte values (key and value bytes included), and the same with
    one overwrite of each key (two versions)."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    store = MvccStore()
    for i in range(keys):
        store.execute(PutRequest(b"key/%012d" % i, b"%0*d" % (value_size, i)))
    one = (tracemalloc.get_traced_memory()[0] - base) / keys
    for i in range(keys):
        store.execute(PutRequest(b"key/%012d" % i, b"%0*d" % (value_size, keys + i)))
    two = (tracemalloc.get_traced_memory()[0] - base) / keys
    tracemalloc.stop()
    return one, two


def main(argv: list[str] | None = None) -> int:
    """Run every benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, help="where to write the log (default: a temp dir)")
    parser.add_argument("--seconds", type=float, default=3.0, help="per WAL batch size")
    parser.add_argument("--record-bytes", type=int, default=256)
    parser.add_argument("--recovery-entries", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=100_000)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="kvstore-bench-", dir=args.dir))
    try:
        print(f"load average: {os.getloadavg()[0]:.1f}")
        print(f"WAL appends with fsync, {args.record_bytes}-byte entries ({root}):")
        for batch in (1, 16, 256):
            rate = wal_appends_per_second(root / "tput", batch, args.seconds, args.record_bytes)
            print(f"  batch {batch:>3}: {rate:>10,.0f} appends/s  ({rate / batch:,.0f} fsyncs/s)")
        n = args.recovery_entries
        t_wal, t_storage, size = recovery_seconds(root / "recovery", n, args.record_bytes)
        print(f"recovery of {n:,} entries ({size / 2**20:,.0f} MiB of segments):")
        print(f"  WAL replay {t_wal[0]:.2f} s (CPU {t_wal[1]:.2f} s)")
        print(f"  DiskStorage.open {t_storage[0]:.2f} s (CPU {t_storage[1]:.2f} s)")
        print(f"  load average now: {os.getloadavg()[0]:.1f}")
        one, two = mvcc_bytes_per_key(args.keys, 32)
        print(f"MVCC memory, {args.keys:,} keys (16-byte keys, 32-byte values):")
        print(f"  {one:,.0f} bytes/key with one version, {two:,.0f} with two")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
