"""Snapshot files: atomic save, checksum, newest valid one loaded, only N kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvstore.raft.types import ConfState, Snapshot, SnapshotMetadata
from kvstore.storage.errors import CorruptionError
from kvstore.storage.snapshotter import Snapshotter, decode_snapshot, encode_snapshot

ids = st.frozensets(st.integers(1, 2**63), max_size=5)


def snap(index: int, data: bytes = b"state") -> Snapshot:
    return Snapshot(SnapshotMetadata(index, index // 10 + 1, ConfState(frozenset({1, 2, 3}))), data)


@settings(deadline=None)  # timing varies on shared CI machines
@given(st.integers(0, 2**63), st.integers(0, 2**63), ids, ids, st.binary(max_size=500))
def test_encoding_round_trips(
    index: int, term: int, voters: frozenset[int], learners: frozenset[int], data: bytes
) -> None:
    s = Snapshot(SnapshotMetadata(index, term, ConfState(voters, learners)), data)
    assert decode_snapshot(encode_snapshot(s)) == s


def test_newest_valid_snapshot_is_loaded_and_only_n_kept(tmp_path: Path) -> None:
    snapper = Snapshotter(tmp_path, keep=3)
    assert snapper.load_newest() is None
    for i in (10, 20, 30, 40, 50):
        snapper.save(snap(i, f"at {i}".encode()))
    assert [p.name[:16] for p in snapper.files()] == [f"{i:016x}" for i in (30, 40, 50)]
    loaded = snapper.load_newest()
    assert loaded == snap(50, b"at 50")
    assert not list(tmp_path.glob("*.tmp"))


def test_damaged_newest_file_is_set_aside_and_an_older_one_used(tmp_path: Path) -> None:
    snapper = Snapshotter(tmp_path)
    snapper.save(snap(10, b"old"))
    newest = snapper.save(snap(20, b"new"))
    raw = bytearray(newest.read_bytes())
    raw[-10] ^= 1
    newest.write_bytes(bytes(raw))
    assert snapper.load_newest() == snap(10, b"old")
    assert newest.with_name(newest.name + ".broken").exists()
    assert not newest.exists()


def test_decode_names_the_file_and_offset() -> None:
    raw = bytearray(encode_snapshot(snap(5)))
    raw[0] ^= 1
    with pytest.raises(CorruptionError) as info:
        decode_snapshot(bytes(raw), "some.snap")
    assert info.value.path == Path("some.snap") and "checksum" in str(info.value)


def test_leftover_temporary_file_is_removed(tmp_path: Path) -> None:
    (tmp_path / "0000000000000010-0000000000000002.snap.tmp").write_bytes(b"partial")
    snapper = Snapshotter(tmp_path)
    assert snapper.load_newest() is None
    assert not list(tmp_path.iterdir())
