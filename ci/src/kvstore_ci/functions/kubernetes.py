"""Cluster access and helm: ``kubeconfig`` and ``helm-upgrade``, plus the smoke check and the
helm rollback that ``deploy`` and ``rollback`` use.

The EKS token is made in the module's own process (:mod:`kvstore_ci.eks_token`); the helm
and kubectl commands and the smoke script are plain logic in :mod:`kvstore_ci.kube`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import dagger
from dagger import Doc, dag

from kvstore_ci import eks_token, images, kube
from kvstore_ci.environments import Environment
from kvstore_ci.functions.base import (
    RUN_ID_VARIABLE,
    AwsKeyId,
    AwsSecretKey,
    AwsSecrets,
    AwsSessionToken,
    EnvName,
    Functions,
    Image,
    Source,
    uncached,
)
from kvstore_ci.promotion import PromotionError, parse_image_reference
from kvstore_ci.reports import StageFailed
from kvstore_ci.stages import SRC

__all__ = [
    "KubernetesFunctions",
    "helm_container",
    "helm_rollback_container",
    "helm_upgrade_container",
    "kubectl_container",
    "smoke_container",
    "split_reference",
]

HELM_CACHE = "/cache/helm"
KUBECONFIG_PATH = "/run/secrets/kubeconfig"
Timeout = Annotated[str, Doc("How long helm or kubectl may wait, as a Go duration (e.g. 10m)")]
# What a plan shows for `helm status -o json` (the function reads the release from it).
RECORDED_STATUS = "{}"
CLUSTER_ADVICE = (
    "check the kubeconfig (make a fresh one with kubeconfig: EKS tokens last 15 minutes)"
    " and that the cluster is reachable"
)


def split_reference(reference: str, env: Environment, stage: str = "image") -> tuple[str, str]:
    """Repository and digest of an image given as ``repo@sha256:...`` or a bare digest.

    A bare digest means the environment's own ECR repository.
    """
    try:
        repository, digest = parse_image_reference(reference)
    except PromotionError:
        raise StageFailed(
            f"{stage}: image {reference!r} is not pinned by digest\n"
            "  what to do: give <repository>@sha256:<64 hex> (what publish returns) or a bare"
            " sha256:<64 hex>"
        ) from None
    return repository or env.image_repository, digest


def with_kubeconfig(container: dagger.Container, kubeconfig: dagger.Secret) -> dagger.Container:
    """``container`` with the kubeconfig mounted as a secret file."""
    return container.with_mounted_secret(KUBECONFIG_PATH, kubeconfig).with_env_variable(
        "KUBECONFIG", KUBECONFIG_PATH
    )


def helm_container(
    image: Image, source: dagger.Directory, kubeconfig: dagger.Secret, run_id: str
) -> dagger.Container:
    """helm with the repository's Kubernetes directory, a cache volume and the kubeconfig."""
    return (
        with_kubeconfig(image(images.HELM), kubeconfig)
        .with_mounted_cache(HELM_CACHE, dag.cache_volume("kvstore-helm"))
        .with_env_variable("HELM_CACHE_HOME", HELM_CACHE)
        .with_directory(f"{SRC}/{kube.KUBERNETES_DIR}", source.directory(kube.KUBERNETES_DIR))
        .with_workdir(SRC)
        .with_env_variable(RUN_ID_VARIABLE, run_id)
    )


def helm_upgrade_container(
    image: Image,
    source: dagger.Directory,
    env: Environment,
    *,
    reference: str,
    kubeconfig: dagger.Secret,
    timeout: str,
    run_id: str,
) -> dagger.Container:
    """upgrade --install --atomic --wait, then helm test, then the status as JSON."""
    repository, digest = split_reference(reference, env, "helm-upgrade")
    return (
        helm_container(image, source, kubeconfig, run_id)
        .with_exec(kube.helm_upgrade_args(env, repository, digest, timeout))
        .with_exec(kube.helm_test_args(env))
        .with_exec(kube.helm_status_args(env))
    )


def helm_rollback_container(
    image: Image,
    source: dagger.Directory,
    env: Environment,
    *,
    to: str,
    kubeconfig: dagger.Secret,
    timeout: int,
    run_id: str,
) -> dagger.Container:
    """helm rollback to the previous (``to="previous"``) or a given revision, then status."""
    if to != "previous" and not to.isdigit():
        raise StageFailed(
            f"rollback: with helm, --to is 'previous' or a revision number, not {to!r}\n"
            "  what to do: pass --to=previous or a revision from helm history"
        )
    revision = 0 if to == "previous" else int(to)
    return (
        helm_container(image, source, kubeconfig, run_id)
        .with_exec(kube.helm_rollback_args(env, revision, f"{timeout}s"))
        .with_exec(kube.helm_status_args(env))
    )


def kubectl_container(image: Image, kubeconfig: dagger.Secret, run_id: str) -> dagger.Container:
    """kubectl with the kubeconfig."""
    return with_kubeconfig(image(images.KUBECTL), kubeconfig).with_env_variable(
        RUN_ID_VARIABLE, run_id
    )


def smoke_container(
    image: Image, env: Environment, kubeconfig: dagger.Secret, timeout: str, run_id: str
) -> dagger.Container:
    """Wait for the StatefulSet's rollout, then health, put, get and del in a member."""
    return (
        kubectl_container(image, kubeconfig, run_id)
        .with_exec(kube.rollout_args(env, timeout))
        .with_exec(kube.smoke_args(env, run_id))
    )


class KubernetesFunctions(Functions):
    """``kubeconfig`` and ``helm-upgrade``; the smoke check and helm rollback as helpers."""

    @uncached
    async def kubeconfig(
        self,
        source: Source,
        env: EnvName,
        *,
        aws_access_key_id: AwsKeyId,
        aws_secret_access_key: AwsSecretKey,
        aws_session_token: AwsSessionToken = None,
    ) -> dagger.Secret:
        """Return a kubeconfig for the environment's EKS cluster, as a secret.

        Its bearer token is made as `aws eks get-token` makes it (a presigned STS
        GetCallerIdentity bound to the cluster) and is good for 14 minutes.
        """
        environment = await self._environment(source, env, "kubeconfig")
        aws = AwsSecrets(aws_access_key_id, aws_secret_access_key, aws_session_token)
        cluster, region = environment.cluster_name, environment.aws.region

        def make(plain: Mapping[str, str]) -> str:
            return eks_token.cluster_kubeconfig(
                AwsSecrets.credentials(plain),
                cluster,
                region,
                namespace=environment.helm.namespace,
                eks_endpoint=environment.aws.endpoint or None,
                sts_endpoint=environment.aws.endpoint or None,
            )

        text = await self._run.api(
            "kubeconfig",
            make,
            secrets=aws.named(),
            actions=(
                f"eks describe-cluster {cluster} (region {region})",
                f"sts presign GetCallerIdentity, header x-k8s-aws-id: {cluster}",
            ),
            recorded="<kubeconfig>",
            advice=(
                f"check the AWS credentials and that eks.cluster_name and aws.region of"
                f" deploy/environments/{env}.yaml name an ACTIVE cluster"
            ),
        )
        return dag.set_secret(f"kubeconfig-{env}-{self._run.run_id()[:12]}", text)

    @uncached
    async def helm_upgrade(
        self,
        source: Source,
        env: EnvName,
        *,
        image: Annotated[str, Doc("The image by digest: <repository>@sha256:... or sha256:...")],
        kubeconfig: Annotated[dagger.Secret, Doc("A kubeconfig for the cluster (kubeconfig)")],
        timeout: Timeout = "10m",
    ) -> str:
        """Install or upgrade the store's release with helm, atomically, then run helm test.

        Uses the environment's values and the image by digest, and returns the release
        status. For bootstrapping and ephemeral environments; the GitOps path is promote.
        """
        environment = await self._environment(source, env, "helm-upgrade")
        upgraded = helm_upgrade_container(
            self._image,
            source,
            environment,
            reference=image,
            kubeconfig=kubeconfig,
            timeout=timeout,
            run_id=self._run.run_id(),
        )
        status = await self._run.stdout(
            "helm-upgrade",
            upgraded,
            note="helm status -o json",
            failure="the upgrade or its helm test failed (--atomic rolls a failed upgrade back)",
            advice="the release runs its previous revision; helm's output says why. "
            + CLUSTER_ADVICE,
            recorded=RECORDED_STATUS,
        )
        return str(kube.parse_release_status(status))

    async def _smoke(self, env: Environment, kubeconfig: dagger.Secret, timeout: int) -> str:
        """Wait for the rollout, then health, put, get and del inside a member."""
        checked = smoke_container(self._image, env, kubeconfig, f"{timeout}s", self._run.run_id())
        output = await self._run.stdout(
            "smoke",
            checked,
            failure="the deployed store failed its check",
            advice="roll back (rollback) or fix forward; the output names the failed step",
        )
        return output.strip().splitlines()[-1]

    async def _helm_rollback(
        self,
        source: dagger.Directory,
        env: Environment,
        to: str,
        kubeconfig: dagger.Secret,
        timeout: int,
    ) -> str:
        """helm rollback, then the release status."""
        rolled = helm_rollback_container(
            self._image,
            source,
            env,
            to=to,
            kubeconfig=kubeconfig,
            timeout=timeout,
            run_id=self._run.run_id(),
        )
        status = await self._run.stdout(
            "helm-rollback",
            rolled,
            note="helm status -o json",
            failure="helm rollback did not complete",
            advice=CLUSTER_ADVICE,
            recorded=RECORDED_STATUS,
        )
        return str(kube.parse_release_status(status))
