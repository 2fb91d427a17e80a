"""DiskStorage: the LogStorage contract (compared with the core's MemoryStorage), and what
survives a restart."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from kvstore.raft import errors as raft_errors
from kvstore.raft.storage import LogStorage, MemoryStorage
from kvstore.raft.types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata
from kvstore.storage.disk_storage import DiskStorage
from kvstore.storage.errors import CorruptionError
from kvstore.storage.snapshotter import Snapshotter

CONF = ConfState(frozenset({1, 2, 3}))


def ents(first: int, last: int, term: int = 1) -> list[Entry]:
    return [Entry(term, i, data=f"{term}/{i}".encode()) for i in range(first, last + 1)]


def open_storage(path: Path) -> DiskStorage:
    return DiskStorage.open(path, conf_state=CONF, segment_size=4096)


def test_is_a_log_storage(tmp_path: Path) -> None:
    storage: LogStorage = open_storage(tmp_path)  # mypy checks the Protocol here
    assert storage.initial_state() == (HardState(), CONF)
    assert (storage.first_index(), storage.last_index()) == (1, 0)


def test_reads_and_their_errors(tmp_path: Path) -> None:
    s = open_storage(tmp_path)
    s.save(HardState(1, 1, 0), ents(1, 10), must_sync=True)
    assert s.entries(3, 6, 10**9) == ents(3, 5)
    assert s.entries(3, 6, 0) == ents(3, 3), "at least one entry even over the size limit"
    assert s.term(0) == 0 and s.term(10) == 1
    with pytest.raises(raft_errors.UnavailableError):
        s.entries(5, 12, 10**9)
    with pytest.raises(raft_errors.UnavailableError):
        s.term(11)
    s.create_snapshot(4, CONF, b"state")
    s.compact(4)
    assert s.first_index() == 5 and s.term(4) == 1
    with pytest.raises(raft_errors.CompactedError):
        s.entries(4, 6, 10**9)
    with pytest.raises(raft_errors.CompactedError):
        s.term(3)
    with pytest.raises(raft_errors.CompactedError):
        s.compact(4)
    with pytest.raises(raft_errors.UnavailableError, match="latest snapshot"):
        s.compact(8)
    with pytest.raises(raft_errors.SnapshotOutOfDateError):
        s.create_snapshot(3, CONF, b"")
    s.close()


def test_everything_saved_survives_a_restart(tmp_path: Path) -> None:
    s = open_storage(tmp_path)
    s.save(HardState(2, 3, 5), ents(1, 10) + ents(11, 12, term=2), must_sync=True)
    s.save(HardState(3, 1, 8), ents(9, 9, term=3), must_sync=True)
    s.close()
    s = open_storage(tmp_path)
    assert s.initial_state() == (HardState(3, 1, 8), CONF)
    assert s.entries(1, 10, 10**9) == ents(1, 8) + ents(9, 9, term=3)
    assert s.last_index() == 9
    s.close()


def test_snapshot_install_replaces_the_log_durably(tmp_path: Path) -> None:
    s = open_storage(tmp_path)
    s.save(HardState(1, 1, 3), ents(1, 10), must_sync=True)
    conf = ConfState(frozenset({1, 2, 4}), frozenset({5}))
    leader_snap = Snapshot(SnapshotMetadata(50, 4, conf), b"leader state")
    s.apply_snapshot(leader_snap)
    assert (s.first_index(), s.last_index(), s.term(50)) == (51, 50, 4)
    s.save(HardState(4, 2, 52), ents(51, 52, term=4), must_sync=True)
    with pytest.raises(raft_errors.SnapshotOutOfDateError):
        s.apply_snapshot(leader_snap)
    s.close()
    s = open_storage(tmp_path)
    assert s.snapshot() == leader_snap
    assert s.initial_state() == (HardState(4, 2, 52), conf)
    assert s.entries(51, 53, 10**9) == ents(51, 52, term=4)
    s.close()


def test_snapshot_releases_covered_segments_and_restart_starts_after_it(tmp_path: Path) -> None:
    s = open_storage(tmp_path)
    for i in range(1, 301):
        s.save(HardState(1, 1, i - 1), ents(i, i), must_sync=True)
    before = len(s.wal.segments)
    s.create_snapshot(250, CONF, b"at 250")
    assert len(s.wal.segments) < before
    s.close()
    s = open_storage(tmp_path)
    assert s.first_index() == 251 and s.last_index() == 300
    assert s.snapshot().data == b"at 250"
    assert s.initial_state()[0] == HardState(1, 1, 299)
    s.close()


def test_commit_is_never_below_the_snapshot(tmp_path: Path) -> None:
    """A snapshot holds committed state, so a restart never reports a commit index behind
    it (a crash between the snapshot file and the next hard state leaves exactly that)."""
    s = open_storage(tmp_path)
    s.save(HardState(1, 1, 2), ents(1, 10), must_sync=True)
    s.create_snapshot(8, CONF, b"")
    s.close()
    s = open_storage(tmp_path)
    assert s.initial_state()[0].commit == 8
    s.close()


@pytest.mark.parametrize("seed", range(4))
def test_behaves_like_memory_storage(tmp_path: Path, seed: int) -> None:
    """Random driver sequences on DiskStorage and the core's MemoryStorage give the same
    reads, and a restart keeps everything after the snapshot."""
    rng = random.Random(seed)
    disk = open_storage(tmp_path)
    mem = MemoryStorage(CONF)
    term = 1
    for step in range(150):
        last = mem.last_index()
        action = rng.random()
        commit = mem.hard_state.commit
        if action < 0.6 or commit < mem.first_index():
            # Like Raft: never overwrite committed entries; snapshots only of committed ones.
            start = rng.randint(max(mem.first_index(), commit + 1, last - 3), last + 1)
            if rng.random() < 0.3:
                term += 1
            batch = ents(start, start + rng.randint(0, 5), term)
            hs = HardState(term, 1, max(commit, min(commit + 2, batch[-1].index)))
            mem.append(batch)
            mem.set_hard_state(hs)
            disk.save(hs, batch, must_sync=True)
        elif action < 0.8:
            index = rng.randint(mem.first_index(), commit)
            if index > mem.snapshot().metadata.index:
                mem.create_snapshot(index, CONF, b"s")
                disk.create_snapshot(index, CONF, b"s")
                mem.compact(index)
                disk.compact(index)
        else:
            disk.close()
            disk = open_storage(tmp_path)
        where = f"seed {seed} step {step}"
        assert disk.last_index() == mem.last_index(), where
        assert disk.initial_state()[0] == mem.hard_state, where
        lo = max(disk.first_index(), mem.first_index())
        hi = mem.last_index() + 1
        assert disk.entries(lo, hi, 10**9) == mem.entries(lo, hi, 10**9), where
        assert disk.term(lo - 1) == mem.term(lo - 1), where
    disk.close()


def test_missing_wal_next_to_snapshots_is_refused(tmp_path: Path) -> None:
    """A fresh log would forget term and vote; better to refuse to start."""
    s = open_storage(tmp_path)
    s.save(HardState(3, 2, 5), ents(1, 5), must_sync=True)
    s.create_snapshot(5, CONF, b"")
    s.close()
    for seg in (tmp_path / "wal").glob("*.wal"):
        seg.unlink()
    with pytest.raises(CorruptionError, match="no WAL segments"):
        open_storage(tmp_path)


def test_crash_between_leader_snapshot_file_and_reset_marker(tmp_path: Path) -> None:
    """The snapshot file is durable, the WAL reset marker is not: entries from the stale
    history after the snapshot index must not survive next to the newer snapshot."""
    s = open_storage(tmp_path)
    s.save(HardState(1, 1, 40), ents(1, 100, term=1), must_sync=True)
    s.close()
    leader_snap = Snapshot(SnapshotMetadata(60, 2, CONF), b"leader state")
    Snapshotter(tmp_path / "snap").save(leader_snap)  # then the crash
    s = open_storage(tmp_path)
    assert s.snapshot() == leader_snap
    assert (s.first_index(), s.last_index(), s.term(60)) == (61, 60, 2)
    assert s.initial_state()[0] == HardState(1, 1, 60)
    s.close()
