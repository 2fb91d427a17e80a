"""GitOps: ``promote``, ``rollback`` and ``affected`` (which pipelines a change triggers).

Git is the source of truth: promote writes an image digest into an environment's values
file on its branch; rollback reverts that commit (or, with helm, rolls the release back).
The git work is plain code (:mod:`kvstore_ci.promotion`, :mod:`kvstore_ci.affected`) run in
the runner container as ``python -m kvstore_ci promote|rollback|affected``.
"""

from __future__ import annotations

import json
from typing import Annotated

import dagger
from dagger import Doc

from kvstore_ci.environments import Environment
from kvstore_ci.functions.argocd import ArgoCdFunctions
from kvstore_ci.functions.base import (
    RUN_ID_VARIABLE,
    AwsSessionToken,
    EnvName,
    Image,
    Repository,
    Source,
    function,
    runner,
    uncached,
)
from kvstore_ci.functions.kubernetes import KubernetesFunctions, split_reference
from kvstore_ci.reports import StageFailed
from kvstore_ci.stages import SRC

__all__ = [
    "GitOpsFunctions",
    "affected_container",
    "promote_container",
    "rollback_container",
]

CLONE_DIR = "/tmp/kvstore-promotion"  # noqa: S108 - inside the runner container
# What a plan shows as the commit promote and rollback print.
RECORDED_COMMIT = json.dumps({"commit": "<commit>"})
GIT_ADVICE = (
    "the output says which git step failed: check the token may push to the branch, that"
    " the branch exists, and the branch protection rules"
)


def _git_flags(env: Environment, remote: str) -> list[str]:
    return ["--remote", remote or env.repository, "--branch", env.branch, "--workdir", CLONE_DIR]


def promote_container(
    image: Image,
    source: dagger.Directory,
    env: Environment,
    *,
    reference: str,
    source_revision: str,
    git_token: dagger.Secret,
    remote: str,
    run_id: str,
) -> dagger.Container:
    """``python -m kvstore_ci promote``: edit the values file, commit, push (with retries)."""
    command = [
        *("python", "-m", "kvstore_ci", "promote", "--env", env.name),
        *("--image", reference, "--source-revision", source_revision),
        *_git_flags(env, remote),
    ]
    return _pushing(image, source, git_token, run_id, command)


def rollback_container(
    image: Image,
    source: dagger.Directory,
    env: Environment,
    *,
    git_token: dagger.Secret,
    remote: str,
    run_id: str,
) -> dagger.Container:
    """``python -m kvstore_ci rollback``: revert the environment's last promotion, push."""
    command = [
        *("python", "-m", "kvstore_ci", "rollback", "--env", env.name),
        *_git_flags(env, remote),
    ]
    return _pushing(image, source, git_token, run_id, command)


def _pushing(
    image: Image,
    source: dagger.Directory,
    git_token: dagger.Secret,
    run_id: str,
    command: list[str],
) -> dagger.Container:
    """``command`` in the runner with the git token as a secret; ``run_id`` defeats caching."""
    return (
        runner(image, source)
        .with_secret_variable("GIT_TOKEN", git_token)
        .with_env_variable(RUN_ID_VARIABLE, run_id)
        .with_exec(command)
    )


def affected_container(
    image: Image, repository: dagger.Directory, base: str, head: str
) -> dagger.Container:
    """``python -m kvstore_ci affected`` over the repository's history."""
    return (
        runner(image, repository)
        .with_directory(SRC, repository)
        .with_exec(["git", "config", "--global", "--add", "safe.directory", SRC])
        .with_exec(
            [
                *("python", "-m", "kvstore_ci", "affected", "--repo", SRC),
                *("--base", base, "--head", head, "--json"),
            ]
        )
    )


class GitOpsFunctions(KubernetesFunctions, ArgoCdFunctions):
    """``promote``, ``rollback`` and ``affected``."""

    @uncached
    async def promote(
        self,
        source: Source,
        env: EnvName,
        *,
        image: Annotated[str, Doc("The image by digest: <repository>@sha256:... (publish's)")],
        source_revision: Annotated[str, Doc("The git commit the image was built from")],
        git_token: Annotated[dagger.Secret, Doc("A token that may push to the env's branch")],
        remote: Annotated[
            str, Doc("Git URL to push to; defaults to the environment's git.repository")
        ] = "",
    ) -> str:
        """Write the image digest into the environment's values file on its branch and push.

        Returns the commit the branch points at (the promotion, or the existing commit when
        the digest was already there).
        """
        environment = await self._environment(source, env, "promote")
        split_reference(image, environment, "promote")
        promoted = promote_container(
            self._image,
            source,
            environment,
            reference=image,
            source_revision=source_revision,
            git_token=git_token,
            remote=remote,
            run_id=self._run.run_id(),
        )
        output = await self._run.stdout(
            "promote",
            promoted,
            note="the commit as JSON",
            failure="the promotion was not pushed",
            advice=GIT_ADVICE,
            recorded=RECORDED_COMMIT,
        )
        return str(json.loads(output)["commit"])

    @uncached
    async def rollback(
        self,
        source: Source,
        env: EnvName,
        *,
        to: Annotated[
            str,
            Doc(
                "previous: undo the last promotion (gitops) or go to the previous release"
                " (helm); or a digest sha256:... to promote (gitops); or a helm revision"
            ),
        ] = "previous",
        strategy: Annotated[str, Doc("gitops (git revert + Argo CD) or helm (helm rollback)")] = (
            "gitops"
        ),
        git_token: Annotated[dagger.Secret | None, Doc("Token to push the revert (gitops)")] = (
            None
        ),
        argocd_token: Annotated[dagger.Secret | None, Doc("Argo CD API token (gitops)")] = None,
        aws_access_key_id: Annotated[
            dagger.Secret | None, Doc("AWS access key id (helm strategy)")
        ] = None,
        aws_secret_access_key: Annotated[
            dagger.Secret | None, Doc("AWS secret access key (helm strategy)")
        ] = None,
        aws_session_token: AwsSessionToken = None,
        timeout: Annotated[int, Doc("Seconds to wait for health afterwards")] = 600,
    ) -> str:
        """Roll the environment back and wait until it is healthy again.

        gitops reverts the promotion in git and waits for Argo CD; helm runs helm rollback.
        """
        environment = await self._environment(source, env, "rollback")
        if strategy == "helm":
            if aws_access_key_id is None or aws_secret_access_key is None:
                raise StageFailed(
                    "rollback: the helm strategy needs the AWS credentials\n"
                    "  what to do: pass --aws-access-key-id and --aws-secret-access-key"
                )
            kubeconfig = await self.kubeconfig(
                source,
                env,
                aws_access_key_id=aws_access_key_id,
                aws_secret_access_key=aws_secret_access_key,
                aws_session_token=aws_session_token,
            )
            return await self._helm_rollback(source, environment, to, kubeconfig, timeout)
        if git_token is None or argocd_token is None:
            raise StageFailed(
                "rollback: the gitops strategy needs --git-token and --argocd-token\n"
                "  what to do: pass both (or --strategy=helm with AWS credentials)"
            )
        if to == "previous":
            reverted = rollback_container(
                self._image,
                source,
                environment,
                git_token=git_token,
                remote="",
                run_id=self._run.run_id(),
            )
            output = await self._run.stdout(
                "rollback",
                reverted,
                note="the revert commit as JSON",
                failure="nothing was reverted",
                advice="promote the digest you want with --to=sha256:<hex>; " + GIT_ADVICE,
                recorded=RECORDED_COMMIT,
            )
            commit = str(json.loads(output)["commit"])
        else:
            commit = await self.promote(
                source, env, image=to, source_revision="rollback", git_token=git_token
            )
        synced = await self.argocd_sync(
            source, env, token=argocd_token, revision=commit, timeout=timeout
        )
        return f"rolled back {env} at {commit}\nargocd: {synced}"

    @function
    async def affected(
        self,
        repository: Repository,
        base: Annotated[str, Doc("The revision before the change (e.g. the PR's base)")],
        head: Annotated[str, Doc("The revision after the change")] = "HEAD",
    ) -> str:
        """Say which pipelines (infrastructure, application, monitoring) a change triggers.

        Returns JSON {pipeline: bool}; `python -m kvstore_ci affected` does the same with
        no engine.
        """
        checked = affected_container(self._image, repository, base, head)
        output = await self._run.stdout(
            "affected",
            checked,
            note="{pipeline: bool} as JSON",
            failure="cannot compare the revisions",
            advice="fetch the whole history (fetch-depth: 0) so both revisions are there",
        )
        return output.strip()
