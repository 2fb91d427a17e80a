"""etcd's snapshot schema over bbolt, the snapshot file checks, and ``kvstore snapshot
restore`` into a data directory (no processes; the etcd differential tests are in
test_etcd_interop.py)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvstore import cli
from kvstore.api.gen.authpb import auth_pb2
from kvstore.api.gen.etcdserverpb import rpc_pb2
from kvstore.api.gen.kvstorepb import internal_pb2
from kvstore.server import etcd_snapshot, snapshot_file
from kvstore.server.auth_store import AuthSnapshot
from kvstore.server.config import ServerConfig
from kvstore.server.etcd_snapshot import EtcdState
from kvstore.server.lessor import LeaseClock
from kvstore.server.restore import RestoreError, load_store, restore
from kvstore.server.snapshot_status import crc32c, status
from kvstore.server.statemachine import StateMachine
from kvstore.storage.bbolt import Bucket, Database, encode_db
from kvstore.storage.disk_storage import DiskStorage
from kvstore.storage.errors import MvccError
from kvstore.storage.mvcc import HistoryReader, MvccStore
from kvstore.storage.mvcc_types import (
    CompactionRequest,
    DeleteRangeRequest,
    LeaseGrantRequest,
    LeaseRevokeRequest,
    PutRequest,
    RangeRequest,
    Request,
    TxnRequest,
)

# -- building stores ---------------------------------------------------------------------

_KEYS = [b"a", b"b", b"c", b"d/1", b"d/2"]
_op = st.one_of(
    st.builds(
        lambda k, v, lease: PutRequest(k, v, lease=lease),
        st.sampled_from(_KEYS),
        st.binary(max_size=6),
        st.sampled_from([0, 0, 7, 8]),
    ),
    st.builds(DeleteRangeRequest, st.sampled_from(_KEYS)),
    st.builds(lambda: DeleteRangeRequest(b"d/", b"d0")),
    st.builds(
        lambda v: TxnRequest(success=(PutRequest(b"a", v), PutRequest(b"d/1", v + b"!"))),
        st.binary(max_size=3),
    ),
    st.builds(LeaseGrantRequest, st.sampled_from([7, 8]), st.integers(1, 99)),
    st.builds(LeaseRevokeRequest, st.sampled_from([7, 8])),
    st.builds(lambda back: CompactionRequest(-back), st.integers(0, 4)),
)


def _run(ops: list[Request]) -> MvccStore:
    store = MvccStore()
    for op in ops:
        req = op
        if isinstance(op, CompactionRequest):
            # A compaction a few revisions back from the current one.
            req = CompactionRequest(max(1, store.revision + op.revision))
        # Refused (unknown lease, already compacted): nothing changed.
        with contextlib.suppress(MvccError):
            store.execute(req)
    return store


def _export(store: MvccStore, **extra: object) -> EtcdState:
    reader = HistoryReader(store)
    while not reader.collect(3):
        pass
    reader.close()
    return EtcdState(
        revision=reader.revision,
        compact_revision=reader.compact_revision,
        versions=reader.versions,
        leases=reader.leases,
        **extra,  # type: ignore[arg-type]
    )


def _through_file(state: EtcdState) -> EtcdState:
    return etcd_snapshot.from_database(Database(encode_db(etcd_snapshot.to_buckets(state))))


def _reads(store: MvccStore) -> list[object]:
    """Every read a client can make of the store's history: the whole key space at each
    readable revision, and the leases."""
    out: list[object] = [store.revision, store.compact_revision, store.hash_kv(0)]
    for rev in range(max(1, store.compact_revision), store.revision + 1):
        out.append(store.range(RangeRequest(key=b"\0", range_end=b"\xff", revision=rev)))
    out.append(store.leases())
    return out


@settings(max_examples=80, deadline=None)
@given(st.lists(_op, max_size=40))
def test_store_history_round_trips_through_an_etcd_database(ops: list[Request]) -> None:
    store = _run(ops)
    back = load_store(_through_file(_export(store)))
    assert _reads(back) == _reads(store)


def test_key_bucket_layout_is_etcds() -> None:
    store = _run(
        [
            PutRequest(b"k", b"v1"),
            TxnRequest(success=(PutRequest(b"x", b"1"), PutRequest(b"y", b"2"))),
            DeleteRangeRequest(b"k"),
        ]
    )
    buckets = dict(etcd_snapshot.to_buckets(_export(store)))
    keys = [k for k, _ in buckets[b"key"].items]
    assert keys == [
        (2).to_bytes(8, "big") + b"_" + (0).to_bytes(8, "big"),
        (3).to_bytes(8, "big") + b"_" + (0).to_bytes(8, "big"),
        (3).to_bytes(8, "big") + b"_" + (1).to_bytes(8, "big"),
        (4).to_bytes(8, "big") + b"_" + (0).to_bytes(8, "big") + b"t",
    ]
    assert sorted(buckets) == [
        b"alarm", b"auth", b"authRoles", b"authUsers", b"cluster", b"key", b"lease",
        b"members", b"members_removed", b"meta",
    ]  # fmt: skip


def test_meta_and_lease_buckets() -> None:
    store = _run([LeaseGrantRequest(0x1234, 30), PutRequest(b"k", b"v", lease=0x1234)])
    store.execute(PutRequest(b"k", b"w"))
    store.compact(3)
    state = _export(store, consistent_index=41, term=6)
    buckets = dict(etcd_snapshot.to_buckets(state))
    meta = dict(buckets[b"meta"].items)
    assert meta[b"consistent_index"] == (41).to_bytes(8, "big")
    assert meta[b"term"] == (6).to_bytes(8, "big")
    rev3 = etcd_snapshot.revision_key(3, 0)
    assert meta[b"finishedCompactRev"] == meta[b"scheduledCompactRev"] == rev3
    assert dict(buckets[b"lease"].items) == {
        (0x1234).to_bytes(8, "big"): bytes([0x08, 0xB4, 0x24, 0x10, 30])
    }
    back = _through_file(state)
    assert (back.consistent_index, back.term, back.compact_revision) == (41, 6, 3)
    assert back.leases == [(0x1234, 30)]


def test_lease_encoding_negative_and_unknown_fields() -> None:
    assert etcd_snapshot.decode_lease(etcd_snapshot.encode_lease(-5, 10, 3)) == (-5, 10)
    # An unknown length-delimited field 9 is skipped.
    assert etcd_snapshot.decode_lease(b"\x08\x02\x4a\x02hi\x10\x05") == (2, 5)
    with pytest.raises(etcd_snapshot.EtcdSnapshotError, match="lease bucket"):
        etcd_snapshot.decode_lease(b"\x08\xff")


def test_members_alarms_and_auth_round_trip() -> None:
    users = (
        auth_pb2.User(name=b"alice", password=b"$2a$hash", roles=["admin"]),
        auth_pb2.User(name=b"bob", options=auth_pb2.UserAddOptions(no_password=True)),
    )
    role = auth_pb2.Role(name=b"admin")
    role.keyPermission.add(permType=auth_pb2.Permission.READWRITE, key=b"a", range_end=b"b")
    member = internal_pb2.MemberInfo(
        id=0xABCDEF0123456789, name="m1", peer_urls=["http://127.0.0.1:2380"], is_learner=True
    )
    state = _export(
        _run([PutRequest(b"k", b"v")]),
        members=[member],
        removed_members=[0x99],
        alarms=[(0xABCDEF0123456789, 1)],
        auth=AuthSnapshot(enabled=True, revision=12, users=users, roles=(role,)),
    )
    back = _through_file(state)
    assert back.members == [member]
    assert back.removed_members == [0x99]
    assert back.alarms == [(0xABCDEF0123456789, 1)]
    assert back.auth == AuthSnapshot(True, 12, users, (role,))
    assert back.cluster_version == "3.5.0"


def test_a_compaction_etcd_had_begun_is_completed() -> None:
    store = _run([PutRequest(b"k", b"1"), PutRequest(b"k", b"2"), PutRequest(b"k", b"3")])
    state = replace(_export(store), compact_revision=2, scheduled_compact_revision=3)
    restored = load_store(_through_file(state))
    assert restored.compact_revision == 3
    assert [kv.value for kv in restored.range(RangeRequest(key=b"k", revision=3)).kvs] == [b"2"]


def test_a_revision_key_of_another_shape_is_refused() -> None:
    db = encode_db([(b"key", Bucket([(b"not-a-revision", b"")]))])
    with pytest.raises(etcd_snapshot.EtcdSnapshotError, match="malformed revision key"):
        etcd_snapshot.from_database(Database(db))


def test_status_figures_follow_etcdctls_definition() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    store = _run([PutRequest(b"k", b"1"), PutRequest(b"j", b"2")])
    db = encode_db(etcd_snapshot.to_buckets(_export(store)))
    got = status(db)
    assert got.revision == 3
    # key 2 + meta 2 + cluster 1 + auth 2
    assert got.total_key == 7
    assert got.total_size == len(db)


# -- snapshot files ---------------------------------------------------------------------


def _file(store: MvccStore | None = None) -> bytes:
    db = encode_db(etcd_snapshot.to_buckets(_export(store or _run([PutRequest(b"k", b"v")]))))
    return db + hashlib.sha256(db).digest()


def test_snapshot_file_checks_are_etcdctls() -> None:
    data = _file()
    assert snapshot_file.read(data).revision == 2
    with pytest.raises(snapshot_file.SnapshotFileError, match=r"^expected sha256 "):
        snapshot_file.read(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(
        snapshot_file.SnapshotFileError, match="snapshot missing hash but --skip-hash-check=false"
    ):
        snapshot_file.read(data[:-32])
    assert snapshot_file.read(data[:-32], skip_hash_check=True).revision == 2
    bad = data[:-32] + b"\0" * 32
    assert snapshot_file.read(bad, skip_hash_check=True).revision == 2


def test_damaged_snapshot_files_are_named_precisely() -> None:
    data = _file()
    db = data[:-32]
    truncated = db[: len(db) - 4096]
    with pytest.raises(snapshot_file.SnapshotFileError, match="database truncated"):
        snapshot_file.read(truncated + hashlib.sha256(truncated).digest())
    garbage = b"x" * 4096
    with pytest.raises(snapshot_file.SnapshotFileError, match="invalid database"):
        snapshot_file.read(garbage + hashlib.sha256(garbage).digest())
    no_key = encode_db([(b"meta", Bucket([]))])
    with pytest.raises(snapshot_file.SnapshotFileError, match="no 'key' bucket"):
        snapshot_file.read(no_key + hashlib.sha256(no_key).digest())
    with pytest.raises(snapshot_file.SnapshotFileError, match="KVSNAP01"):
        snapshot_file.read(b"KVSNAP01" + b"\0" * 504 + b"h" * 32)


def test_export_of_a_member_is_a_consistent_etcd_snapshot() -> None:
    sm = StateMachine(1, 2, lambda: 3, LeaseClock(time.monotonic, 2))
    for i in range(5000):
        put = rpc_pb2.PutRequest(key=f"k{i:05}".encode(), value=b"v")
        sm.apply(internal_pb2.InternalRequest(put=put), i + 1, 3)

    async def run() -> snapshot_file.Exported:
        task = asyncio.create_task(snapshot_file.export(sm))
        await asyncio.sleep(0)  # the export has read its first slice
        # Applied while the export runs: not in it.
        sm.apply(internal_pb2.InternalRequest(put=rpc_pb2.PutRequest(key=b"late")), 5001, 3)
        return await task

    exported = asyncio.run(run())
    with exported.file as f:
        data = f.read()
    assert len(data) == exported.size
    assert hashlib.sha256(data).digest() == exported.digest
    state = snapshot_file.read(data + exported.digest)
    assert (state.revision, state.consistent_index, state.term) == (5001, 5000, 3)
    assert len(load_store(state)) == 5000


# -- restore ----------------------------------------------------------------------------


def _config(tmp_path: Path) -> ServerConfig:
    return ServerConfig(
        name="r1",
        data_dir=tmp_path / "r1.kvstore",
        initial_advertise_peer_urls=("http://127.0.0.1:2380",),
        initial_cluster=(("r1", "http://127.0.0.1:2380"),),
    )


def test_restore_makes_a_data_dir_a_member_starts_from(tmp_path: Path) -> None:
    store = _run(
        [
            LeaseGrantRequest(7, 60),
            PutRequest(b"a", b"1", lease=7),
            PutRequest(b"a", b"2", lease=7),
            PutRequest(b"b", b"x"),
            DeleteRangeRequest(b"b"),
        ]
    )
    store.compact(3)
    snap = tmp_path / "snap.db"
    snap.write_bytes(_file(store))
    config = _config(tmp_path)
    done = restore(snap, config)
    assert (done.revision, done.compact_revision, done.keys, done.leases) == (5, 3, 1, 1)
    assert done.auth == AuthSnapshot()
    # What `kvstore serve` does on start: the WAL names the member, the snapshot the state.
    identity_raw = DiskStorage.read_metadata(config.data_dir)
    assert identity_raw is not None
    storage = DiskStorage.open(config.data_dir)
    snapshot = storage.snapshot()
    assert (snapshot.metadata.index, snapshot.metadata.term) == (1, 1)
    assert storage.hard_state.commit == 1 and storage.hard_state.term == 1
    storage.close()
    sm = StateMachine(done.identity.member_id, done.identity.cluster_id, lambda: 1,
                      LeaseClock(time.monotonic, 2))  # fmt: skip
    sm.restore(snapshot.data)
    assert _reads(sm.kv) == _reads(store)
    assert [m.name for m in sm.member_list()] == ["r1"]


def test_restore_refuses_an_existing_data_dir(tmp_path: Path) -> None:
    config = _config(tmp_path)
    config.data_dir.mkdir()
    snap = tmp_path / "snap.db"
    snap.write_bytes(_file())
    with pytest.raises(RestoreError, match=r"data-dir .* exists"):
        restore(snap, config)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d[: len(d) // 2], "snapshot missing hash but --skip-hash-check=false"),
        (lambda d: d[:100] + bytes([d[100] ^ 1]) + d[101:], "expected sha256"),
        (lambda d: b"", "is empty"),
        (lambda d: b"\x01" * 4096 + hashlib.sha256(b"\x01" * 4096).digest(), "invalid database"),
    ],
)
def test_cli_restore_of_a_damaged_file_says_why(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    damage: object,
    message: str,
) -> None:
    snap = tmp_path / "snap.db"
    snap.write_bytes(damage(_file()))  # type: ignore[operator]
    target = tmp_path / "out"
    argv = ["snapshot", "restore", str(snap), "--data-dir", str(target)]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not target.exists()


def test_cli_restore_and_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snap = tmp_path / "snap.db"
    snap.write_bytes(_file())
    assert cli.main(["snapshot", "status", str(snap), "-w", "json"]) == 0
    assert '"revision":2' in capsys.readouterr().out
    target = tmp_path / "m.kvstore"
    argv = ["snapshot", "restore", str(snap), "--name", "m", "--data-dir", str(target)]
    assert cli.main(argv) == 0
    assert "revision 2" in capsys.readouterr().out
    assert (target / "wal").is_dir() and (target / "snap").is_dir()
    assert cli.main(["snapshot", "restore", str(tmp_path / "missing.db")]) == 1
    assert "cannot read snapshot" in capsys.readouterr().err


_SAMPLE_OPS: list[Request] = [LeaseGrantRequest(7, 60), PutRequest(b"k", b"v" * 5000, lease=7)]
_SAMPLE_OPS += [PutRequest(f"n{i:03}".encode(), b"x" * 30) for i in range(150)]
_SAMPLE_OPS.append(DeleteRangeRequest(b"n0", b"n1"))
_SAMPLE = _file(_run(_SAMPLE_OPS))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_SAMPLE) - 33), st.integers(1, 255)), max_size=6))
def test_damaged_bytes_give_a_snapshot_error_or_a_valid_state(
    flips: list[tuple[int, int]],
) -> None:
    """Whatever bytes are damaged, reading (hash check skipped, so the damage reaches the
    parser) and status either succeed or raise SnapshotFileError: never another exception."""
    data = bytearray(_SAMPLE)
    for at, mask in flips:
        data[at] ^= mask
    with contextlib.suppress(snapshot_file.SnapshotFileError, RestoreError):
        load_store(snapshot_file.read(bytes(data), skip_hash_check=True))
    with contextlib.suppress(snapshot_file.SnapshotFileError):
        status(snapshot_file.database_of(bytes(data), skip_hash_check=True))


def test_a_history_reader_sees_the_store_as_of_its_start() -> None:
    """Writes, deletes and a compaction made between its slices change nothing it reads."""
    store = _run([PutRequest(f"k{i}".encode(), b"1") for i in range(20)])
    for i in range(20):
        store.execute(PutRequest(f"k{i}".encode(), b"2"))
    before = _reads(store)
    reader = HistoryReader(store)
    assert not reader.collect(5)
    store.compact(store.revision)
    store.execute(DeleteRangeRequest(b"k", b"l"))
    store.execute(PutRequest(b"new", b"x"))
    while not reader.collect(5):
        pass
    held = store.db_size
    reader.close()
    state = EtcdState(reader.revision, reader.compact_revision, reader.versions, reader.leases)
    assert _reads(load_store(_through_file(state))) == before
    # Closing the reader let the deferred compaction drop the old versions.
    assert store.db_size < held
