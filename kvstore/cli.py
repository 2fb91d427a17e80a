"""The ``kvstore`` command line entry point."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kvstore import __version__
from kvstore.bench import cli as bench_cli
from kvstore.client import cli as client_cli
from kvstore.server import config as server_config
from kvstore.server import devcluster, serve, snapshot_cli


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser; each subcommand registers itself here."""
    parser = argparse.ArgumentParser(
        prog="kvstore",
        description="A Raft-replicated key-value store with an etcd v3 compatible API.",
    )
    parser.add_argument("--version", action="version", version=f"kvstore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser(
        "serve",
        help="run one member",
        description="Run one member. Every flag can also be set as KVSTORE_<FLAG> "
        "(e.g. KVSTORE_DATA_DIR); a flag wins over the environment.",
    )
    server_config.add_serve_arguments(serve)
    devcluster.add_arguments(
        sub.add_parser("dev-cluster", help="run a local cluster in the foreground")
    )
    client_cli.add_commands(sub)
    snapshot_cli.add_arguments(
        sub.add_parser("snapshot", help="restore or inspect a snapshot file (etcd's format)")
    )
    bench_cli.add_arguments(
        sub.add_parser("bench", help="benchmark etcd v3 endpoints, or compare with etcd")
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 (one return per command)
    """Run the command named on the command line and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "serve":
        try:
            config = server_config.build_config(args)
        except server_config.ConfigError as exc:
            print(f"kvstore serve: invalid configuration: {exc}", file=sys.stderr)
            return 2
        return serve.run(config)
    if args.command == "dev-cluster":
        return devcluster.run(args)
    if args.command == "snapshot":
        return snapshot_cli.run(args)
    if args.command == "bench":
        return bench_cli.run(args)
    return client_cli.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
