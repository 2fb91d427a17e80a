"""``python -m kvstore_ci``: engine-free commands of the pipeline module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kvstore_ci import delivery_cli, dryrun
from kvstore_ci.main import KvstoreCi


def function_names() -> list[str]:
    """The module's functions as ``dagger call`` names them (kebab-case)."""
    registered = KvstoreCi.__dagger_object_type__.functions  # type: ignore[attr-defined]
    return sorted(name.replace("_", "-") for name in registered if name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one engine-free command of the module."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["plan"]:  # takes `dagger call`-style flags, so it parses its own
        return dryrun.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m kvstore_ci")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("functions", help="list the module's functions")
    commands.add_parser("plan", help="print a function's pipeline without an engine")
    delivery_cli.add_commands(commands)
    args = parser.parse_args(argv)
    if args.command in delivery_cli.COMMANDS:
        return delivery_cli.run(args)
    if args.command == "functions":
        sys.stdout.write("\n".join(function_names()) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
