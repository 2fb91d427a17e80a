"""``kvstore snapshot restore``: a new member's data directory from an etcd snapshot.

As ``etcdctl snapshot restore`` does, the snapshot's key space (every stored revision, the
compaction point, leases with their TTLs, alarms, authentication) becomes the state of a
**new** cluster whose membership comes from the flags (``--name``, ``--initial-cluster``,
``--initial-cluster-token``, ``--initial-advertise-peer-urls``), never from the snapshot:
the members recorded in it belong to the old cluster. The data directory holds a Raft
snapshot of that state at index 1, term 1, and a log that starts after it; ``kvstore serve``
with the same flags then starts from it. The directory is built beside the target and
renamed into place, so a failed restore leaves nothing behind.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from kvstore.api.gen.kvstorepb import internal_pb2
from kvstore.raft.types import HardState, Snapshot, SnapshotMetadata
from kvstore.server import snapshot_file
from kvstore.server.auth_store import AuthSnapshot
from kvstore.server.config import ServerConfig
from kvstore.server.etcd_snapshot import EtcdState
from kvstore.server.member import Identity, bootstrap_identity
from kvstore.storage.disk_storage import DiskStorage
from kvstore.storage.errors import MvccError
from kvstore.storage.mvcc import MvccStore, store_from_history

RESTORED_INDEX = 1
RESTORED_TERM = 1


class RestoreError(Exception):
    """The restore cannot be done; the message says why (etcdctl's wording where it has one)."""


@dataclass(frozen=True, slots=True)
class Restored:
    """What a restore put into the data directory."""

    identity: Identity
    revision: int
    compact_revision: int
    keys: int
    """Live keys at the restored revision."""
    versions: int
    leases: int
    auth: AuthSnapshot


def load_store(state: EtcdState) -> MvccStore:
    """The MVCC store an etcd snapshot's state describes; a compaction etcd had begun is
    completed, as etcd does on restore."""
    try:
        store = store_from_history(
            state.revision, state.compact_revision, state.versions, state.leases
        )
        if state.scheduled_compact_revision > state.compact_revision:
            store.compact(state.scheduled_compact_revision)
    except MvccError as exc:
        raise RestoreError(f"the snapshot's key history is inconsistent: {exc}") from None
    store.applied_index = RESTORED_INDEX
    return store


def server_state(state: EtcdState, store: MvccStore, identity: Identity) -> bytes:
    """The data of the restored Raft snapshot: the store, the new members, the alarms and
    the authentication state (users, roles, whether auth is on)."""
    out = internal_pb2.ServerState(mvcc=store.snapshot())
    out.members.extend(identity.members)
    for member_id, alarm in sorted(set(state.alarms)):
        out.alarms.add(memberID=member_id, alarm=alarm)
    out.auth.enabled = state.auth.enabled
    out.auth.revision = state.auth.revision
    out.auth.users.extend(state.auth.users)
    out.auth.roles.extend(state.auth.roles)
    return out.SerializeToString()


def _read(path: Path, skip_hash_check: bool) -> EtcdState:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RestoreError(f"cannot read snapshot {str(path)!r}: {exc.strerror}") from None
    if not data:
        raise RestoreError(f"snapshot {str(path)!r} is empty")
    try:
        return snapshot_file.read(data, skip_hash_check)
    except snapshot_file.SnapshotFileError as exc:
        raise RestoreError(f"snapshot {str(path)!r}: {exc}") from None


def write_data_dir(target: Path, identity: Identity, data: bytes) -> None:
    """A data directory whose log starts with the Raft snapshot ``data``."""
    storage = DiskStorage.open(
        target, conf_state=identity.bootstrap_conf(), metadata=identity.encode()
    )
    try:
        md = SnapshotMetadata(RESTORED_INDEX, RESTORED_TERM, identity.bootstrap_conf())
        storage.apply_snapshot(Snapshot(md, data))
        storage.save(HardState(term=RESTORED_TERM, commit=RESTORED_INDEX), [], must_sync=True)
    finally:
        storage.close()


def restore(
    snapshot: Path,
    config: ServerConfig,
    *,
    skip_hash_check: bool = False,
) -> Restored:
    """Restore ``snapshot`` into ``config.data_dir`` (which must not exist) for the member
    ``config`` describes."""
    target = config.data_dir
    if target.exists():
        raise RestoreError(f"data-dir {str(target)!r} exists")
    state = _read(snapshot, skip_hash_check)
    store = load_store(state)
    identity = bootstrap_identity(config)
    data = server_state(state, store, identity)
    staging = target.with_name(f".{target.name}.restoring")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        write_data_dir(staging, identity, data)
        staging.rename(target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise RestoreError(f"cannot write data-dir {str(target)!r}: {exc}") from None
    return Restored(
        identity=identity,
        revision=store.revision,
        compact_revision=store.compact_revision,
        keys=len(store),
        versions=len(state.versions),
        leases=len(state.leases),
        auth=state.auth,
    )
