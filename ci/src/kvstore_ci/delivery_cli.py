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
import os
import sys
from pathlib import Path

from kvstore_ci import affected as affected_module

__all__ = ["add_commands", "run"]

COMMANDS = ("affected", "promote", "rollback", "argocd-sync")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the delivery commands on the module's argument parser."""
    cmd = commands.add_parser("affected", help="which pipelines a change triggers")
    cmd.add_argument("--base", required=True, help="revision before the change")
    cmd.add_argument("--head", default="HEAD", help="revision after the change")
    cmd.add_argument("--repo", type=Path, default=Path.cwd(), help="the git checkout")
    cmd.add_argument("--json", action="store_true", help="print {pipeline: bool} as JSON")

    cmd = commands.add_parser("promote", help="write an image digest into an environment")
    cmd.add_argument("--env", required=True, help="environment name, e.g. staging")
    cmd.add_argument("--image", required=True, help="image reference, <repository>@sha256:<hex>")
    cmd.add_argument("--source-revision", required=True, help="git revision it was built from")
    _git_arguments(cmd)

    cmd = commands.add_parser("rollback", help="revert an environment's last promotion")
    cmd.add_argument("--env", required=True, help="environment name, e.g. staging")
    _git_arguments(cmd)

    cmd = commands.add_parser("argocd-sync", help="sync an Argo CD application and wait")
    cmd.add_argument("--server", required=True, help="Argo CD API URL")
    cmd.add_argument("--application", required=True, help="Application name")
    cmd.add_argument("--revision", default="", help="git revision it must be synced at")
    cmd.add_argument("--timeout", type=float, default=600.0, help="seconds to wait")
    cmd.add_argument("--poll-interval", type=float, default=5.0, help="seconds between polls")
    cmd.add_argument("--insecure", action="store_true", help="skip TLS verification")


def _git_arguments(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--remote", required=True, help="git URL of the repository")
    cmd.add_argument("--branch", required=True, help="the environment's branch")
    cmd.add_argument("--workdir", type=Path, required=True, help="an empty directory to clone in")


def run(args: argparse.Namespace) -> int:
    """Run the delivery command ``args.command``; the exit status is the return value."""
    if args.command in ("promote", "rollback"):
        return _promotion(args)
    if args.command == "argocd-sync":
        return _argocd_sync(args)
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


def _promotion(args: argparse.Namespace) -> int:
    from kvstore_ci import promotion  # noqa: PLC0415 - ruamel.yaml only when promoting

    token = os.environ.get("GIT_TOKEN", "")
    try:
        if args.command == "promote":
            repository, digest = promotion.parse_image_reference(args.image)
            result = promotion.promote_remote(
                remote=args.remote,
                branch=args.branch,
                workdir=args.workdir,
                env=args.env,
                digest=digest,
                source_revision=args.source_revision,
                repository=repository,
                token=token,
            )
        else:
            result = promotion.rollback_remote(
                remote=args.remote,
                branch=args.branch,
                workdir=args.workdir,
                env=args.env,
                token=token,
            )
    except promotion.PromotionError as error:
        sys.stderr.write(f"{args.command}: {error}\n")
        return 1
    sys.stdout.write(json.dumps(result.as_dict(), sort_keys=True) + "\n")
    return 0


def _argocd_sync(args: argparse.Namespace) -> int:
    from kvstore_ci import argocd  # noqa: PLC0415 - httpx only when syncing

    token = os.environ.get("ARGOCD_AUTH_TOKEN", "")
    if not token:
        sys.stderr.write("argocd-sync: ARGOCD_AUTH_TOKEN is not set\n")
        return 2
    client = argocd.ArgoCdClient(args.server, token, verify=not args.insecure)
    try:
        state = client.sync_and_wait(
            args.application,
            revision=args.revision,
            timeout=args.timeout,
            poll_interval=args.poll_interval,
        )
    except argocd.ArgoCdError as error:
        sys.stderr.write(f"argocd-sync: {error}\n")
        return 1
    finally:
        client.close()
    sys.stdout.write(json.dumps(state.as_dict(), sort_keys=True) + "\n")
    return 0
