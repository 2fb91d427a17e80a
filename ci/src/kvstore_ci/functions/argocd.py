"""Argo CD: ``argocd-sync``, and the sync-and-wait that deploy, rollback and monitoring reuse.

The sync-and-wait loop is plain code (:mod:`kvstore_ci.argocd`), run inside the runner
container as ``python -m kvstore_ci argocd-sync`` with the token as a secret variable.
"""

from __future__ import annotations

import json
from typing import Annotated

import dagger
from dagger import Doc

from kvstore_ci.environments import Environment
from kvstore_ci.functions.base import (
    RUN_ID_VARIABLE,
    EnvName,
    Functions,
    Image,
    Source,
    runner,
    uncached,
)

__all__ = ["ArgoCdFunctions", "argocd_container"]

SYNC_ADVICE = (
    "the output has Argo CD's own message: if Argo CD was unreachable, check argocd.server in"
    " the environment file and the network; otherwise fix the manifest or the failing hook,"
    " roll back, or renew the token if it was refused"
)


def argocd_container(
    image: Image,
    source: dagger.Directory,
    env: Environment,
    *,
    token: dagger.Secret,
    application: str,
    revision: str,
    timeout: int,
    run_id: str,
) -> dagger.Container:
    """``python -m kvstore_ci argocd-sync``: sync one application and wait for it."""
    command = [
        *("python", "-m", "kvstore_ci", "argocd-sync"),
        *("--server", env.argocd.server),
        *("--application", application),
        *("--revision", revision),
        *("--timeout", str(timeout)),
    ]
    return (
        runner(image, source)
        .with_secret_variable("ARGOCD_AUTH_TOKEN", token)
        .with_env_variable(RUN_ID_VARIABLE, run_id)
        .with_exec(command)
    )


def _recorded_state(application: str, revision: str) -> str:
    """What a plan shows as the final state line of a sync."""
    return json.dumps(
        {
            "application": application,
            "sync_status": "Synced",
            "revision": revision or "<revision>",
            "health": "Healthy",
        }
    )


class ArgoCdFunctions(Functions):
    """``argocd-sync``."""

    @uncached
    async def argocd_sync(
        self,
        source: Source,
        env: EnvName,
        *,
        token: Annotated[dagger.Secret, Doc("Argo CD API token (sent as a Bearer token)")],
        revision: Annotated[
            str, Doc("The git commit the application must be synced at; empty: any")
        ] = "",
        timeout: Annotated[int, Doc("Seconds to wait for Synced and Healthy")] = 600,
        application: Annotated[
            str, Doc("The Argo CD Application; defaults to the environment's")
        ] = "",
    ) -> str:
        """Ask Argo CD to sync, then wait until the application is Synced and Healthy.

        Synced means at the given revision. Fails at once with Argo CD's message when the
        sync fails or the application is Degraded.
        """
        environment = await self._environment(source, env, "argocd-sync")
        return await self._argocd(
            source,
            environment,
            token=token,
            applications=[application or environment.argocd.application],
            revision=revision,
            timeout=timeout,
        )

    async def _argocd(
        self,
        source: dagger.Directory,
        env: Environment,
        *,
        token: dagger.Secret,
        applications: list[str],
        revision: str,
        timeout: int,
    ) -> str:
        """Sync the applications one after the other (their order is their sync waves)."""
        lines = []
        for application in applications:
            synced = argocd_container(
                self._image,
                source,
                env,
                token=token,
                application=application,
                revision=revision,
                timeout=timeout,
                run_id=self._run.run_id(),
            )
            output = await self._run.stdout(
                "argocd-sync",
                synced,
                note="the final state as JSON",
                failure=f"Argo CD did not bring {application} to Synced and Healthy",
                advice=SYNC_ADVICE,
                recorded=_recorded_state(application, revision),
            )
            state = json.loads(output.strip().splitlines()[-1])
            lines.append(
                f"{state['application']}: {state['sync_status']} at {state['revision']},"
                f" {state['health']}"
            )
        return "\n".join(lines)
