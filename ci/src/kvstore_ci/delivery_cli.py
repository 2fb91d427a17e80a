"""The delivery commands of ``python -m kvstore_ci``: they run without a Dagger engine.

``affected`` answers which pipelines a change triggers; ``promote`` and ``argocd-sync`` are
what the ``promote`` and ``argocd_sync`` Dagger functions run inside their containers, so a
developer can run exactly the same step from a shell. Secrets come from environment
variables (``GIT_TOKEN``, ``ARGOCD_AUTH_TOKEN``), never from arguments, so they do not show
up in process listings or shell history.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kvstore_ci import affected as affected_module

__all__ = ["add_commands", "run"]

COMMANDS = ("affected",)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the delivery commands on the module's argument parser."""
    cmd = commands.add_parser("affected", help="which pipelines a change triggers")
    cmd.add_argument("--base", required=True, help="revision before the change")
    cmd.add_argument("--head", default="HEAD", help="revision after the change")
    cmd.add_argument("--repo", type=Path, default=Path.cwd(), help="the git checkout")
    cmd.add_argument("--json", action="store_true", help="print {pipeline: bool} as JSON")


def run(args: argparse.Namespace) -> int:
    """Run the delivery command ``args.command``; the exit status is the return value."""
    return _affected(args)


def _affected(args: argparse.Namespace) -> int:
    try:
        pipelines = affected_module.affected(args.repo, args.base, args.head)
    except affected_module.AffectedError as error:
        sys.stderr.write(f"affected: {error}\n")
        return 2
    if args.json:
        flags = {name: name in pipelines for name in affected_module.PIPELINES}
        sys.stdout.write(json.dumps(flags, sort_keys=True) + "\n")
    else:
        sys.stdout.write("".join(f"{name}\n" for name in pipelines))
    return 0
