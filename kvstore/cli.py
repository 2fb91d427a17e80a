"""The ``kvstore`` command line entry point."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kvstore import __version__


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser; each subcommand registers itself here."""
    parser = argparse.ArgumentParser(
        prog="kvstore",
        description="A Raft-replicated key-value store with an etcd v3 compatible API.",
    )
    parser.add_argument("--version", action="version", version=f"kvstore {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command named on the command line and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
