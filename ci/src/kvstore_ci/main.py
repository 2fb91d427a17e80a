"""The module's main object: one function per pipeline stage."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import anyio
import dagger
from dagger import DefaultPath, Doc, Ignore, dag, function, object_type

from kvstore_ci import ecr, images, reports, stages
from kvstore_ci.delivery import Delivery
from kvstore_ci.plan import Stage

F = TypeVar("F", bound=Callable[..., Any])


def uncached(func: F) -> F:
    """Register ``func`` as a module function that Dagger never serves from its cache.

    For functions with side effects outside the pipeline (pushes, deploys). The SDK's
    ``function`` overloads do not declare ``cache`` (the implementation accepts it), hence
    the ignore on that one call.
    """
    register: Callable[[F], F] = function(cache="never")  # type: ignore[call-overload]
    return register(func)


# The stages `ci` runs concurrently, in the order it reports them.
CI_STAGES = ("lint", "test", "build")

# The repository checkout every source-reading stage takes (`dagger call` loads it from
# the module's git repository unless --source is given).
Source = Annotated[
    dagger.Directory,
    DefaultPath("/"),
    Ignore(stages.SOURCE_IGNORE),
    Doc("The repository checkout (defaults to the repository holding this module)."),
]


@object_type
class KvstoreCi(Delivery):
    """Lint, test, build, publish and deploy the kvstore.

    The delivery stages (terraform, helm, promotion, Argo CD, rollback, monitoring,
    affected) come from :class:`~kvstore_ci.delivery.Delivery`.
    """

    mirror: Annotated[
        str,
        Doc(
            "Registry host (and optional path) to pull every base image from instead of"
            " its public registry, e.g. 'registry.internal:5000/hub'. Digests are kept."
        ),
    ] = ""

    @function
    def python_base(self) -> dagger.Container:
        """The pinned Python image every Python stage starts from."""
        return dag.container().from_(images.with_mirror(images.PYTHON, self.mirror))

    def _reference(self, reference: str) -> str:
        """A pinned image reference, through the mirror when one is set."""
        return images.with_mirror(reference, self.mirror)

    def _image(self, reference: str) -> dagger.Container:
        """A container from a pinned image, through the mirror when one is set."""
        return dag.container().from_(self._reference(reference))

    def _image_build(self, source: dagger.Directory) -> dagger.Container:
        """The image as ``ci`` builds it: no version, revision or source labels."""
        return stages.image_build(
            source,
            base_image=self._reference(images.PYTHON),
            version="",
            revision="",
            source_url="",
        )

    # --- lint, test, build ---------------------------------------------------------------

    @function
    async def lint(self, source: Source) -> str:
        """Run ruff, mypy, yamllint, terraform fmt, helm lint and actionlint; report all.

        Every tool runs even when another fails; the error lists every failing tool with
        its output. Returns the summary when all pass.
        """
        return await stages.run_checks("lint", stages.lint_checks(self._image, source))

    def _plan_lint(self, source: Source) -> list[Stage]:
        return [
            Stage(c.name, c.container, ("exit-code", "stdout", "stderr"))
            for c in stages.lint_checks(self._image, source)
        ]

    @function
    async def test(
        self,
        source: Source,
        select: Annotated[
            str,
            Doc(
                "pytest -m expression choosing the tests; the default leaves out the tests"
                " that need a Docker engine or a Dagger engine, which a stage container lacks"
            ),
        ] = stages.DEFAULT_TEST_SELECTION,
    ) -> dagger.File:
        """Run the test suite in the pinned Python image; return the JUnit XML report.

        A failure raises an error that names every failing test.
        """
        return await stages.run_tests(stages.test_run(self._image, source, select))

    def _plan_test(
        self, source: Source, select: str = stages.DEFAULT_TEST_SELECTION
    ) -> list[Stage]:
        ran = stages.test_run(self._image, source, select)
        return [Stage("test", ran, ("exit-code", f"file {stages.JUNIT_REPORT}"))]

    @function
    def build(
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
        """Build the store's image from the repository's Dockerfile, with OCI labels."""
        return stages.image_build(
            source,
            base_image=self._reference(images.PYTHON),
            version=version,
            revision=revision,
            source_url=source_url,
            created=datetime.now(UTC).replace(microsecond=0).isoformat(),
        )

    # --- publish -------------------------------------------------------------------------

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
        """Push the image to Amazon ECR; return the pushed reference with its digest.

        The ECR token is fetched here with the AWS credentials and reaches the registry
        only as a secret. A missing repository, rejected credentials or an expired token
        fail with an error naming the registry and repository.
        """
        tag = tag or await stages.revision_tag(container)
        session = await aws_session_token.plaintext() if aws_session_token else None
        login = functools.partial(
            ecr.login,
            region=region,
            repository=repository,
            access_key_id=await aws_access_key_id.plaintext(),
            secret_access_key=await aws_secret_access_key.plaintext(),
            session_token=session,
            endpoint_url=ecr_endpoint,
        )
        credentials = await anyio.to_thread.run_sync(login)
        ecr.ensure_fresh(credentials, datetime.now(UTC))
        address = f"{credentials.address}:{tag}"
        password = dag.set_secret(f"ecr-token-{credentials.registry}", credentials.password)
        authed = stages.with_auth(container, address, credentials.username, password)
        try:
            return await authed.publish(address)
        except dagger.QueryError as e:
            message = ecr.explain_push_error(str(e), credentials.registry, repository)
            raise ecr.EcrError(message) from e

    def _plan_publish(
        self,
        container: dagger.Container,
        repository: str,
        *,
        aws_access_key_id: dagger.Secret,
        aws_secret_access_key: dagger.Secret,
        tag: str = "",
        region: str = "us-east-1",
        aws_session_token: dagger.Secret | None = None,
        ecr_endpoint: str = "",
    ) -> list[Stage]:
        registry = f"<account>.dkr.ecr.{region}.amazonaws.com"
        address = f"{registry}/{repository}:{tag or '<revision label>'}"
        credentials = {
            "aws-access-key-id": aws_access_key_id,
            "aws-secret-access-key": aws_secret_access_key,
        }
        if aws_session_token is not None:
            credentials["aws-session-token"] = aws_session_token
        endpoint = f" via {ecr_endpoint}" if ecr_endpoint else ""
        token = dag.secret("<ecr-authorization-token>")
        return [
            Stage(
                "ecr-login",
                None,
                (
                    f"ecr get-authorization-token (region {region}){endpoint}",
                    f"ecr describe-repositories {repository}",
                ),
                inputs=credentials,
            ),
            Stage(
                "publish",
                stages.with_auth(container, address, "AWS", token),
                (f"publish {address}",),
            ),
        ]

    @uncached
    async def publish_to(
        self,
        container: Annotated[dagger.Container, Doc("The image to push")],
        address: Annotated[str, Doc("Full image address with tag, e.g. registry:5000/kvstore:1")],
        username: Annotated[str, Doc("Registry user name")],
        password: Annotated[dagger.Secret, Doc("Registry password or token")],
    ) -> str:
        """Push the image to any registry with basic auth; return the reference with digest."""
        return await stages.with_auth(container, address, username, password).publish(address)

    def _plan_publish_to(
        self,
        container: dagger.Container,
        address: str,
        username: str,
        password: dagger.Secret,
    ) -> list[Stage]:
        authed = stages.with_auth(container, address, username, password)
        return [Stage("publish", authed, (f"publish {address}",))]

    # --- the whole check -----------------------------------------------------------------

    @function
    async def ci(
        self,
        source: Source,
        fail: Annotated[
            bool,
            Doc(
                "Raise an error listing every failed stage (false: return the reports anyway,"
                " so a CI job can upload them before failing)"
            ),
        ] = True,
    ) -> dagger.Directory:
        """Lint, test and build at the same time; report every failure, not the first.

        Returns a directory with the JUnit report (junit.xml), the lint summary (lint.txt)
        and a one-line-per-stage summary (summary.txt), for `export --path=test-results`.
        Every stage's commands are cached whatever their outcome, so calling `ci` again
        after `ci --fail=false` costs nothing and raises the same failures.
        """
        outcomes: dict[str, str] = {}
        failures: dict[str, str] = {}
        junit: list[dagger.File] = []

        async def run_lint() -> str:
            return await stages.run_checks("lint", stages.lint_checks(self._image, source))

        async def run_test() -> str:
            tests = stages.test_run(self._image, source, stages.DEFAULT_TEST_SELECTION)
            junit.append(tests.file(stages.JUNIT_REPORT))
            await stages.run_tests(tests)
            return "all tests passed"

        async def run_build() -> str:
            await self._image_build(source).sync()
            return "image built"

        async def run(name: str, stage: Callable[[], Awaitable[str]]) -> None:
            try:
                outcomes[name] = await stage()
            except Exception as e:  # every failure is reported, none stops the others
                failures[name] = str(e)

        async with anyio.create_task_group() as group:
            group.start_soon(run, "lint", run_lint)
            group.start_soon(run, "test", run_test)
            group.start_soon(run, "build", run_build)
        if failures and fail:
            raise reports.StageFailed(reports.stage_failures(failures, CI_STAGES))
        results = {**outcomes, **{name: f"FAILED: {error}" for name, error in failures.items()}}
        summary = "".join(f"{name}: {results[name].splitlines()[0]}\n" for name in CI_STAGES)
        return (
            dag.directory()
            .with_file("junit.xml", junit[0])
            .with_new_file("lint.txt", results["lint"] + "\n")
            .with_new_file("summary.txt", summary)
        )

    def _plan_ci(self, source: Source, fail: bool = True) -> list[Stage]:
        built = self._image_build(source)
        return [
            *self._plan_lint(source),
            *self._plan_test(source),
            Stage("build", built, ("sync",)),
            Stage(
                "reports",
                None,
                (
                    "export junit.xml, lint.txt, summary.txt"
                    + ("; raise if a stage failed" if fail else "; returned whatever happened"),
                ),
            ),
        ]
