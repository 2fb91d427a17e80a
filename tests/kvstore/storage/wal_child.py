"""The process the crash tests kill: it appends to a WAL and reports what is durable.

Run as ``python -m tests.kvstore.storage.wal_child DIR SEED``. It recovers whatever is in
DIR, then loops: a few appends (sometimes overwriting a not-yet-committed suffix with a
higher term, as a Raft follower does), one ``sync()``, then one line on stdout::

    <last index> <term of last> <commit> <term at commit>

printed only after ``sync()`` returned, so every line is a durability promise. Entries
at or below ``commit`` are never overwritten afterwards; the hard state saved with each
batch carries the term and commit. Entry data is a pure function of (term, index), so the
parent can check every recovered byte.
"""

from __future__ import annotations

import hashlib
import random
import sys
from pathlib import Path

from kvstore.raft.types import Entry, HardState
from kvstore.storage.wal import Wal


def payload(term: int, index: int, size: int) -> bytes:
    """The data of entry (term, index): its size is encoded so the parent can recheck it."""
    seed = hashlib.sha256(f"{term}:{index}".encode()).digest()
    body = (seed * (size // len(seed) + 1))[:size]
    return size.to_bytes(4, "little") + body


def main() -> None:
    """Append and report until killed."""
    directory, seed = Path(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(seed)
    wal, replay = Wal.open(directory, segment_size=256 * 1024)
    log = replay.entries
    term = max(replay.hard_state.term, log[-1].term if log else 0, 1)
    commit = replay.hard_state.commit
    while True:
        for _ in range(rng.randint(1, 4)):
            last = log[-1].index if log else 0
            start = last + 1
            if rng.random() < 0.15 and last > commit:
                term += 1
                start = rng.randint(commit + 1, last)
            big = rng.random() < 0.05
            ents = [
                Entry(term, i, data=payload(term, i, rng.randint(0, 200_000 if big else 300)))
                for i in range(start, start + rng.randint(1, 64))
            ]
            del log[start - 1 :]
            log.extend(ents)
            wal.save(HardState(term, 1, commit), ents, sync=False)
        wal.sync()
        last_entry = log[-1]
        at_commit = log[commit - 1].term if commit else 0
        sys.stdout.write(f"{last_entry.index} {last_entry.term} {commit} {at_commit}\n")
        sys.stdout.flush()
        # What is durable now may become committed: later batches never overwrite it.
        commit = last_entry.index


if __name__ == "__main__":
    main()
