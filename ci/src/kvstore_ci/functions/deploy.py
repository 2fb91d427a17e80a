"""The application pipeline, ``deploy``: build, publish, promote or helm-upgrade, smoke check.

It is only a composition of the other families' functions, so every step is the same one
a developer reruns alone with ``dagger call <step>``.
"""

from __future__ import annotations

from typing import Annotated

import dagger
from dagger import Doc

from kvstore_ci.functions.base import (
    AwsKeyId,
    AwsSecretKey,
    AwsSessionToken,
    EnvName,
    Source,
    uncached,
)
from kvstore_ci.functions.build import BuildFunctions
from kvstore_ci.functions.gitops import GitOpsFunctions
from kvstore_ci.reports import StageFailed

__all__ = ["DeployFunctions"]


class DeployFunctions(BuildFunctions, GitOpsFunctions):
    """``deploy``."""

    @uncached
    async def deploy(
        self,
        source: Source,
        env: EnvName,
        *,
        revision: Annotated[str, Doc("The git commit being deployed (image tag and label)")],
        aws_access_key_id: AwsKeyId,
        aws_secret_access_key: AwsSecretKey,
        aws_session_token: AwsSessionToken = None,
        strategy: Annotated[
            str, Doc("gitops: promote and let Argo CD sync; helm: helm-upgrade directly")
        ] = "gitops",
        git_token: Annotated[
            dagger.Secret | None, Doc("Token that may push to the env's branch (gitops)")
        ] = None,
        argocd_token: Annotated[dagger.Secret | None, Doc("Argo CD API token (gitops)")] = None,
        timeout: Annotated[int, Doc("Seconds to wait for the rollout")] = 600,
    ) -> str:
        """Run the application pipeline: build, publish to ECR, promote, wait, smoke check.

        gitops promotes the digest in git and waits for Argo CD; helm runs helm-upgrade
        instead. The smoke check (health, put, get, del) runs in the store either way.
        """
        environment = await self._environment(source, env, "deploy")
        if strategy not in ("gitops", "helm"):
            raise StageFailed(
                f"deploy: strategy must be gitops or helm, not {strategy!r}\n"
                "  what to do: pass --strategy=gitops or --strategy=helm"
            )
        if strategy == "gitops" and (git_token is None or argocd_token is None):
            raise StageFailed(
                "deploy: the gitops strategy needs --git-token and --argocd-token\n"
                "  what to do: pass both, or --strategy=helm"
            )
        built = await self.build(source, revision=revision)
        reference = await self.publish(
            built,
            environment.ecr_repository,
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            aws_session_token=aws_session_token,
            tag=revision,
            region=environment.aws.region,
            ecr_endpoint=environment.aws.endpoint,
        )
        report = [f"published {reference}"]

        async def fresh_kubeconfig() -> dagger.Secret:
            # EKS tokens last 15 minutes: one per step that talks to the cluster.
            return await self.kubeconfig(
                source,
                env,
                aws_access_key_id=aws_access_key_id,
                aws_secret_access_key=aws_secret_access_key,
                aws_session_token=aws_session_token,
            )

        if strategy == "helm":
            status = await self.helm_upgrade(
                source,
                env,
                image=reference,
                kubeconfig=await fresh_kubeconfig(),
                timeout=f"{timeout}s",
            )
            report.append(f"helm: {status}")
        else:
            assert git_token is not None and argocd_token is not None
            commit = await self.promote(
                source, env, image=reference, source_revision=revision, git_token=git_token
            )
            report.append(f"promoted in {environment.branch} at {commit}")
            synced = await self.argocd_sync(
                source, env, token=argocd_token, revision=commit, timeout=timeout
            )
            report.append(f"argocd: {synced}")
        report.append(await self._smoke(environment, await fresh_kubeconfig(), timeout))
        return "\n".join(report)
