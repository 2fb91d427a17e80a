"""The process the crash tests kill: it writes a Raft log through DiskStorage and reports
what is durable.

Run as ``python -m tests.kvstore.storage.wal_child DIR SEED``. It recovers whatever is in
DIR, then loops: a few appends (sometimes overwriting a not-yet-committed suffix with a
higher term, as a Raft follower does), one ``sync()``, then one line on stdout::

    <last index> <term of last> <commit> <term at commit>

printed only after ``sync()`` returned, so every line is a durability promise. Entries
at or below ``commit`` are never overwritten afterwards; the hard state saved with each
batch carries the term and commit. Now and then it snapshots at the commit index and
compacts, which deletes covered WAL segments. Entry data is a pure function of (term,
index), so the parent can check every recovered byte.
"""

from __future__ import annotations

import hashlib
import random
import sys
from pathlib import Path

from kvstore.raft.types import ConfState, Entry, HardState
from kvstore.storage.disk_storage import DiskStorage

CONF = ConfState(frozenset({1, 2, 3}))


def payload(term: int, index: int, size: int) -> bytes:
    """The data of entry (term, index): its size is encoded so the parent can recheck it."""
    seed = hashlib.sha256(f"{term}:{index}".encode()).digest()
    body = (seed * (size // len(seed) + 1))[:size]
    return size.to_bytes(4, "little") + body


def snapshot_data(index: int) -> bytes:
    """What the snapshot at ``index`` holds."""
    return f"state at {index}".encode()


def main() -> None:
    """Append and report until killed."""
    directory, seed = Path(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(seed)
    storage = DiskStorage.open(directory, conf_state=CONF, segment_size=256 * 1024)
    hs, _ = storage.initial_state()
    term = max(hs.term, storage.term(storage.last_index()), 1)
    commit = hs.commit
    while True:
        for _ in range(rng.randint(1, 4)):
            last = storage.last_index()
            start = last + 1
            if rng.random() < 0.15 and last > commit:
                term += 1
                start = rng.randint(commit + 1, last)
            big = rng.random() < 0.05
            ents = [
                Entry(term, i, data=payload(term, i, rng.randint(0, 200_000 if big else 300)))
                for i in range(start, start + rng.randint(1, 64))
            ]
            storage.save(HardState(term, 1, commit), ents, must_sync=False)
        storage.sync()
        last = storage.last_index()
        at_commit = storage.term(commit) if commit else 0
        sys.stdout.write(f"{last} {storage.term(last)} {commit} {at_commit}\n")
        sys.stdout.flush()
        if rng.random() < 0.1 and commit > storage.snapshot().metadata.index:
            storage.create_snapshot(commit, CONF, snapshot_data(commit))
            storage.compact(commit)
        # What is durable now may become committed: later batches never overwrite it.
        commit = last


if __name__ == "__main__":
    main()
