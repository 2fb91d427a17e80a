"""Build and publish: the Python base, the store's image, and pushes to ECR or any registry."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated

import dagger
from dagger import Doc, dag

from kvstore_ci import ecr, images, stages
from kvstore_ci.functions.base import AwsSecrets, Functions, Source, check, function, uncached
from kvstore_ci.reports import OperationFailed, StageFailed

__all__ = ["BuildFunctions"]

PULL_ADVICE = (
    "check that the registry is reachable and holds the pinned digest"
    " (or pass --mirror with a registry that does)"
)


class BuildFunctions(Functions):
    """The image's functions: ``python-base``, ``build``, ``publish``, ``publish-to``."""

    @function
    async def python_base(self) -> dagger.Container:
        """Return the pinned Python image that every Python stage starts from.

        Pulled here, so an image that cannot be pulled fails with the registry's own words.
        """
        return await self._run.sync("python-base", self._image(images.PYTHON), advice=PULL_ADVICE)

    def _image_build(self, source: dagger.Directory) -> dagger.Container:
        """The image as ``ci`` builds it: no labels, so an unchanged tree is a cache hit."""
        return stages.image_build(
            source,
            base_image=self._reference(images.PYTHON),
            version="",
            revision="",
            source_url="",
        )

    @function
    @check
    async def build(
        self,
        source: Source,
        version: Annotated[
            str, Doc("The version label of the image (e.g. 1.4.0); empty leaves it out")
        ] = "",
        revision: Annotated[
            str,
            Doc(
                "The git commit the image is built from; labelled, and the default tag of"
                " publish (CI passes the commit it checked out)"
            ),
        ] = "",
        source_url: Annotated[
            str, Doc("URL of the source repository, for the org.opencontainers.image.source label")
        ] = "",
    ) -> dagger.Container:
        """Build the store's image from the repository's Dockerfile, with OCI labels.

        The build runs here, so a broken Dockerfile or an unpullable base image is this
        function's error rather than a later one's.
        """
        built = stages.image_build(
            source,
            base_image=self._reference(images.PYTHON),
            version=version,
            revision=revision,
            source_url=source_url,
            created=datetime.now(UTC).replace(microsecond=0).isoformat(),
        )
        return await self._built(built)

    async def _built(self, image: dagger.Container) -> dagger.Container:
        """``image`` built now, so a build failure is the build stage's own error."""
        return await self._run.sync(
            "build",
            image,
            failure="the image did not build",
            advice="fix the Dockerfile step the output names; " + PULL_ADVICE,
        )

    @uncached
    async def publish(
        self,
        container: Annotated[dagger.Container, Doc("The image to push (e.g. from build)")],
        repository: Annotated[str, Doc("The ECR repository name, e.g. kvstore")],
        *,
        aws_access_key_id: Annotated[dagger.Secret, Doc("AWS access key id")],
        aws_secret_access_key: Annotated[dagger.Secret, Doc("AWS secret access key")],
        tag: Annotated[
            str,
            Doc("Immutable tag to push; defaults to the image's revision label (the git commit)"),
        ] = "",
        region: Annotated[str, Doc("AWS region of the registry")] = "us-east-1",
        aws_session_token: Annotated[
            dagger.Secret | None, Doc("AWS session token, for temporary credentials")
        ] = None,
        ecr_endpoint: Annotated[
            str, Doc("ECR API endpoint URL override (a VPC endpoint); empty for AWS's own")
        ] = "",
    ) -> str:
        """Push the image to Amazon ECR and return the pushed reference with its digest.

        The ECR token is fetched here with the AWS credentials and reaches the registry
        only as a secret. A missing repository, rejected credentials or an expired token
        fail with an error naming the registry and repository.
        """
        tag = tag or await stages.revision_tag(container, self._run)
        aws = AwsSecrets(aws_access_key_id, aws_secret_access_key, aws_session_token)

        def login(plain: Mapping[str, str]) -> ecr.RegistryLogin:
            credentials = AwsSecrets.credentials(plain)
            return ecr.login(
                region=region,
                repository=repository,
                access_key_id=credentials.access_key_id,
                secret_access_key=credentials.secret_access_key,
                session_token=credentials.session_token,
                endpoint_url=ecr_endpoint,
            )

        endpoint = f" via {ecr_endpoint}" if ecr_endpoint else ""
        credentials = await self._run.api(
            "ecr-login",
            login,
            secrets=aws.named(),
            actions=(
                f"ecr get-authorization-token (region {region}){endpoint}",
                f"ecr describe-repositories {repository}",
            ),
            recorded=_recorded_login(region, repository),
            advice="check the AWS credentials, the region and that the repository exists",
        )
        try:
            ecr.ensure_fresh(credentials, datetime.now(UTC))
        except ecr.EcrError as error:
            raise StageFailed(f"publish: {error}") from None
        address = f"{credentials.address}:{tag}"
        password = dag.set_secret(f"ecr-token-{credentials.registry}", credentials.password)
        authed = stages.with_auth(container, address, credentials.username, password)
        try:
            return await self._run.publish("publish", authed, address)
        except OperationFailed as failed:
            message = ecr.explain_push_error(failed.message, credentials.registry, repository)
            raise StageFailed(f"publish: {message}") from None

    @uncached
    async def publish_to(
        self,
        container: Annotated[dagger.Container, Doc("The image to push")],
        address: Annotated[str, Doc("Full image address with tag, e.g. registry:5000/kvstore:1")],
        username: Annotated[str, Doc("Registry user name")],
        password: Annotated[dagger.Secret, Doc("Registry password or token")],
    ) -> str:
        """Push the image to any registry with basic auth and return the reference with digest."""
        authed = stages.with_auth(container, address, username, password)
        return await self._run.publish(
            "publish",
            authed,
            address,
            advice="check the address, that the registry is reachable and the credentials",
        )


def _recorded_login(region: str, repository: str) -> ecr.RegistryLogin:
    """What a plan shows for the ECR login: the registry's shape, a placeholder token."""
    registry = f"<account>.dkr.ecr.{region}.amazonaws.com"
    return ecr.RegistryLogin(
        registry=registry,
        repository=repository,
        username="AWS",
        password="<ecr-authorization-token>",  # noqa: S106 - a placeholder, not a secret
        expires_at=datetime.now(UTC) + timedelta(hours=12),
    )
