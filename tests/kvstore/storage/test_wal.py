"""The write-ahead log: replay, overwrites, rotation, release, group commit, and what
recovery does with damaged bytes (torn tail cut off; damage in the middle refused with the
file and offset)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from kvstore.raft.types import Entry, HardState
from kvstore.storage import record
from kvstore.storage.errors import CorruptionError, SnapshotNotFoundError, WalClosedError
from kvstore.storage.wal import Wal


def ents(first: int, last: int, term: int = 1, size: int = 20) -> list[Entry]:
    return [Entry(term, i, data=bytes([i % 251]) * size) for i in range(first, last + 1)]


def reopen(directory: Path, base_index: int = 0) -> tuple[Wal, list[Entry], HardState]:
    wal, replay = Wal.open(directory, base_index=base_index)
    return wal, replay.entries, replay.hard_state


def last_segment(directory: Path) -> Path:
    return sorted(directory.glob("*.wal"))[-1]


def record_offsets(data: bytes) -> list[int]:
    offsets, off = [], 0
    while off < len(data):
        offsets.append(off)
        _, off = record.decode_at(data, off)
    return offsets


def test_replay_returns_entries_hard_state_and_metadata(tmp_path: Path) -> None:
    wal, replay = Wal.open(tmp_path, metadata=b"node-1")
    assert replay.entries == [] and replay.hard_state == HardState()
    wal.save(HardState(1, 2, 0), ents(1, 5), sync=True)
    wal.save(HardState(1, 2, 5), [], sync=True)
    wal.close()
    wal, replay = Wal.open(tmp_path, metadata=b"ignored for an existing log")
    assert replay.metadata == b"node-1"
    assert replay.entries == ents(1, 5)
    assert replay.hard_state == HardState(1, 2, 5)
    assert replay.truncated is None
    wal.close()


def test_a_lower_index_overwrites_the_suffix_on_replay(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path)
    wal.save(None, ents(1, 10, term=1), sync=True)
    wal.save(HardState(2, 3, 4), ents(6, 7, term=2), sync=True)
    wal.save(None, ents(8, 9, term=2), sync=True)
    wal.close()
    wal, log, hs = reopen(tmp_path)
    assert log == ents(1, 5, term=1) + ents(6, 9, term=2)
    assert hs == HardState(2, 3, 4)
    wal.close()


def test_entries_below_the_base_index_are_skipped(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path)
    wal.save(None, ents(1, 10), sync=True)
    wal.close()
    wal, log, _ = reopen(tmp_path, base_index=6)
    assert [e.index for e in log] == [7, 8, 9, 10]
    wal.close()


def test_an_overwrite_at_or_below_the_base_cuts_what_followed(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path)
    wal.save(None, ents(1, 10, term=1), sync=True)
    wal.save(None, ents(5, 6, term=2), sync=True)
    wal.close()
    wal, replay = Wal.open(tmp_path, base_index=6)
    assert replay.entries == [], "entries 7..10 were discarded by the overwrite at 5"
    assert replay.term_at_base == 2
    wal.close()


def test_segments_rotate_and_release_keeps_what_the_snapshot_does_not_cover(
    tmp_path: Path,
) -> None:
    wal, _ = Wal.open(tmp_path, segment_size=4096)
    for i in range(1, 201):
        wal.save(HardState(1, 1, i - 1), ents(i, i, size=100), sync=True)
    segments = wal.segments
    assert len(segments) > 5
    assert [s.seq for s in segments] == list(range(len(segments)))
    removed = wal.release_to(100)
    assert removed, "segments wholly before index 100 should have been deleted"
    remaining = wal.segments
    assert remaining[0].first_index - 1 <= 100 < remaining[1].first_index - 1
    assert not any(p.exists() for p in removed)
    wal.close()
    wal, log, hs = reopen(tmp_path, base_index=100)
    assert [e.index for e in log] == list(range(101, 201))
    assert hs == HardState(1, 1, 199), "every segment repeats the hard state"
    wal.close()
    with pytest.raises(CorruptionError, match="follows a gap"):
        Wal.open(tmp_path, base_index=10)


def test_release_never_deletes_the_current_segment(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path)
    wal.save(None, ents(1, 10), sync=True)
    assert wal.release_to(1000) == []
    assert len(wal.segments) == 1
    wal.close()


def test_reset_marker_discards_the_log_and_needs_its_snapshot(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path)
    wal.save(None, ents(1, 10), sync=True)
    wal.append_snapshot(50, 3, reset=True)
    wal.save(None, ents(51, 52, term=3), sync=True)
    wal.close()
    wal, replay = Wal.open(tmp_path, base_index=50)
    assert [e.index for e in replay.entries] == [51, 52]
    assert replay.snapshot is not None and replay.snapshot.index == 50
    wal.close()
    with pytest.raises(SnapshotNotFoundError, match="index 50"):
        Wal.open(tmp_path, base_index=0)


def test_group_commit_one_sync_covers_every_appended_record(tmp_path: Path) -> None:
    fsyncs: list[float] = []
    wal, _ = Wal.open(tmp_path, fsync_observer=fsyncs.append)
    lsns = [wal.append_entries(ents(i, i)) for i in range(1, 17)]
    assert lsns == sorted(lsns) and wal.durable_lsn < lsns[-1]
    assert wal.sync() >= lsns[-1]
    assert len(fsyncs) == 1
    assert wal.sync() == wal.durable_lsn and len(fsyncs) == 1, "nothing new: no fsync"
    wal.close()


def test_group_commit_from_many_threads(tmp_path: Path) -> None:
    """While one fsync is in flight, other threads append and call sync(): a single
    further fsync covers all of them (the rest find their records already durable)."""
    fsyncs: list[float] = []
    in_fsync = threading.Event()
    release = threading.Event()

    def observe(seconds: float) -> None:
        fsyncs.append(seconds)
        if len(fsyncs) == 1:
            in_fsync.set()
            assert release.wait(10)

    wal, _ = Wal.open(tmp_path, fsync_observer=observe)
    wal.append_entries(ents(1, 1))
    first = threading.Thread(target=wal.sync)
    first.start()
    assert in_fsync.wait(10)
    results: dict[int, tuple[int, int]] = {}

    def writer(i: int) -> None:
        lsn = wal.append_entries(ents(i, i))
        results[i] = (lsn, wal.sync())

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2, 10)]
    for i, t in enumerate(threads, start=2):
        t.start()  # appends entry i (in index order), then blocks in sync()
        while wal.appended_lsn < i:
            threading.Event().wait(0.001)
    release.set()
    for t in [first, *threads]:
        t.join()
    assert len(fsyncs) == 2, "eight syncs shared one fsync"
    assert all(durable >= lsn for lsn, durable in results.values())
    wal.close()
    wal, log, _ = reopen(tmp_path)
    assert [e.index for e in log] == list(range(1, 10))
    wal.close()


def test_closed_wal_refuses_appends(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path)
    wal.close()
    with pytest.raises(WalClosedError):
        wal.append_entries(ents(1, 1))


# -- damaged bytes --------------------------------------------------------------------


def _written(tmp_path: Path, n: int = 20) -> Path:
    wal, _ = Wal.open(tmp_path)
    for i in range(1, n + 1):
        wal.save(HardState(1, 1, i), ents(i, i, size=50), sync=True)
    wal.close()
    return last_segment(tmp_path)


@pytest.mark.parametrize("cut", [1, 5, 9, 30, 70])
def test_torn_tail_is_cut_and_logged(
    tmp_path: Path, cut: int, caplog: pytest.LogCaptureFixture
) -> None:
    seg = _written(tmp_path)
    data = seg.read_bytes()
    offsets = record_offsets(data)
    last_entry_at = offsets[-2]  # the last entry (the final record is its hard state)
    seg.write_bytes(data[: last_entry_at + cut])
    with caplog.at_level(logging.WARNING):
        wal, replay = Wal.open(tmp_path)
    assert replay.truncated == (seg, last_entry_at)
    assert [e.index for e in replay.entries] == list(range(1, 20))
    assert replay.hard_state == HardState(1, 1, 19)
    assert str(seg) in caplog.text and f"offset {last_entry_at}" in caplog.text
    assert seg.stat().st_size == last_entry_at
    wal.save(None, ents(20, 21), sync=True)
    wal.close()
    wal, log, _ = reopen(tmp_path)
    assert [e.index for e in log] == list(range(1, 22)), "appending after the cut works"
    wal.close()


def test_garbage_after_the_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    seg = _written(tmp_path)
    size = seg.stat().st_size
    with seg.open("ab") as f:
        f.write(b"\x03\x99\x00\x00\x10garbage-that-is-no-record")
    wal, replay = Wal.open(tmp_path)
    assert replay.truncated == (seg, size)
    assert len(replay.entries) == 20
    wal.close()


def test_zero_hole_before_later_records_is_a_torn_write(tmp_path: Path) -> None:
    """Pages written out of order before a crash: a hole of zeros where the next record
    should start, valid records after it. None of it was synced, so it is cut off."""
    seg = _written(tmp_path)
    data = bytearray(seg.read_bytes())
    offsets = record_offsets(bytes(data))
    hole = offsets[-6]
    data[hole : hole + 40] = bytes(40)
    seg.write_bytes(bytes(data))
    wal, replay = Wal.open(tmp_path)
    assert replay.truncated == (seg, hole)
    wal.close()


def test_flipped_byte_in_the_middle_is_refused_with_file_and_offset(tmp_path: Path) -> None:
    seg = _written(tmp_path)
    data = bytearray(seg.read_bytes())
    offsets = record_offsets(bytes(data))
    victim = offsets[10]
    data[victim + record.HEADER_SIZE + 3] ^= 0x5A
    seg.write_bytes(bytes(data))
    with pytest.raises(CorruptionError) as info:
        Wal.open(tmp_path)
    assert info.value.path == seg and info.value.offset == victim
    assert str(seg) in str(info.value) and f"offset {victim}" in str(info.value)
    assert seg.read_bytes() == bytes(data), "a refused log is left untouched"


def test_any_damage_in_an_older_segment_is_refused(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path, segment_size=2048)
    for i in range(1, 101):
        wal.save(None, ents(i, i, size=100), sync=True)
    wal.close()
    first = sorted(tmp_path.glob("*.wal"))[0]
    data = first.read_bytes()
    offsets = record_offsets(data)
    first.write_bytes(data[: offsets[-1] + 4])  # even a "torn" end is fatal here
    with pytest.raises(CorruptionError) as info:
        Wal.open(tmp_path)
    assert info.value.path == first and info.value.offset == offsets[-1]


def test_a_missing_segment_is_refused(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path, segment_size=2048)
    for i in range(1, 101):
        wal.save(None, ents(i, i, size=100), sync=True)
    wal.close()
    segs = sorted(tmp_path.glob("*.wal"))
    segs[2].unlink()
    with pytest.raises(CorruptionError, match="segment 2 is missing"):
        Wal.open(tmp_path)


def test_leftover_temporary_segment_is_ignored(tmp_path: Path) -> None:
    _written(tmp_path)
    (tmp_path / "0000000000000001-0000000000000015.wal.tmp").write_bytes(b"half a header")
    wal, replay = Wal.open(tmp_path)
    assert len(replay.entries) == 20
    assert not list(tmp_path.glob("*.tmp"))
    wal.close()


def test_open_creates_missing_directories(tmp_path: Path) -> None:
    wal, replay = Wal.open(tmp_path / "data" / "member" / "wal")
    assert replay.entries == [] and len(wal.segments) == 1
    assert wal.segments[0].path.parent == tmp_path / "data" / "member" / "wal"
    wal.close()


def test_metadata_is_read_from_the_oldest_remaining_segment_without_a_replay(
    tmp_path: Path,
) -> None:
    assert Wal.read_metadata(tmp_path / "absent") is None
    assert Wal.read_metadata(tmp_path) is None
    wal, _ = Wal.open(tmp_path, metadata=b"member 7 of cluster 9", segment_size=4096)
    for i in range(1, 101):
        wal.save(HardState(1, 1, i - 1), ents(i, i, size=100), sync=True)
    assert wal.release_to(60), "the first segments are gone"
    wal.close()
    assert Wal.read_metadata(tmp_path) == b"member 7 of cluster 9"
    oldest = min(tmp_path.glob("*.wal"))
    oldest.write_bytes(b"\0" * 64)  # a head that holds no record
    with pytest.raises(CorruptionError, match="no metadata record"):
        Wal.read_metadata(tmp_path)
