"""``kvstore snapshot ...``: work on snapshot files offline (etcdctl's flags and messages).

``restore FILE`` turns a snapshot taken with ``etcdctl snapshot save`` (of etcd or of this
store) into the data directory of a new member; see :mod:`kvstore.server.restore`.
``status FILE`` shows what a snapshot holds, in etcdctl's table or JSON form.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kvstore.server import config as server_config
from kvstore.server import snapshot_file
from kvstore.server.restore import RestoreError, restore
from kvstore.server.snapshot_status import status

_RESTORE_FLAGS = (
    ("--name", "the restored member's name, as given to 'kvstore serve'"),
    ("--data-dir", "the data directory to create (default: <name>.kvstore); must not exist"),
    ("--initial-cluster", "name=peerURL,... of the new cluster's members"),
    ("--initial-cluster-token", "the new cluster's token, as given to 'kvstore serve'"),
    ("--initial-advertise-peer-urls", "the restored member's peer URLs"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``snapshot restore`` and ``snapshot status``."""
    sub = parser.add_subparsers(dest="snapshot_command", metavar="COMMAND", required=True)
    rest = sub.add_parser(
        "restore",
        help="make a new member's data directory from a snapshot file",
        description="Restore an etcd snapshot (etcdctl snapshot save, from etcd or kvstore) "
        "into a new data directory. The members come from the flags, which must be the ones "
        "'kvstore serve' is then started with; each flag also reads KVSTORE_<FLAG>.",
    )
    rest.add_argument("file", type=Path, help="the snapshot file")
    for flag, text in _RESTORE_FLAGS:
        rest.add_argument(flag, default=None, help=f"{text} [env {server_config.env_name(flag)}]")
    rest.add_argument(
        "--skip-hash-check",
        action="store_true",
        help="accept a file without its SHA-256 (e.g. an etcd member's member/snap/db) or with "
        "a wrong one",
    )
    st = sub.add_parser("status", help="show a snapshot file's hash, revision, keys and size")
    st.add_argument("file", type=Path, help="the snapshot file")
    st.add_argument("-w", "--write-out", choices=("simple", "table", "json"), default="simple")


def run(args: argparse.Namespace) -> int:
    """Run the chosen snapshot command; errors go to stderr with exit status 1 (2 for a
    flag error)."""
    if args.snapshot_command == "status":
        return _status(args)
    try:
        config = server_config.build_config(args)
    except server_config.ConfigError as exc:
        print(f"kvstore snapshot restore: {exc}", file=sys.stderr)
        return 2
    try:
        done = restore(args.file, config, skip_hash_check=args.skip_hash_check)
    except RestoreError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    auth = done.auth
    print(
        f"restored snapshot {args.file} into {config.data_dir}: member {done.identity.member_id:x} "
        f"of cluster {done.identity.cluster_id:x}, revision {done.revision} (compacted at "
        f"{done.compact_revision}), {done.keys} keys, {done.versions} stored versions, "
        f"{done.leases} leases"
    )
    if auth.enabled or auth.users or auth.roles:
        state = "on" if auth.enabled else "off"
        print(f"  with {len(auth.users)} users and {len(auth.roles)} roles, auth {state}")
    return 0


def _status(args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"Error: cannot read snapshot {str(path)!r}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        db = snapshot_file.database_of(data, skip_hash_check=True)
        st = status(db)
    except snapshot_file.SnapshotFileError as exc:
        print(f"Error: snapshot {str(path)!r}: {exc}", file=sys.stderr)
        return 1
    if args.write_out == "json":
        print(json.dumps(st.as_json(), separators=(",", ":")))
    elif args.write_out == "table":
        print(st.table())
    else:
        print(st.simple())
    return 0
