"""The pipeline's stage code run for real, through a Dagger engine built from source.

Client mode: each test opens ``dagger.connection()`` (the SDK starts the session binary
that scripts/dagger-engine builds, since the full CLI cannot be built here) and awaits the
same stage functions the module's ``lint``, ``test`` and ``build`` call. The pinned images
are replaced by local stand-ins (Debian's python3 3.11 plus a venv; the base image plus the
terraform, helm and actionlint binaries the test environment installs) served by a real
registry beside the engine, referenced by their own digests: the upstream digests cannot be
reproduced.
"""

from __future__ import annotations

import subprocess
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

import anyio
import dagger
import pytest
from dagger import dag
from kvstore_ci import KvstoreCi, images, stages
from kvstore_ci.reports import StageFailed

from tests import tooling
from tests.engine.conftest import Engine

pytestmark = [pytest.mark.engine, pytest.mark.slow]

T = TypeVar("T")

CANARY = "tests/engine/test_zz_stage_canary.py"
CANARY_TESTS = '''"""Written into the source by tests/engine/test_pipeline.py; never committed."""
import pytest

pytestmark = pytest.mark.engine


def test_canary_passes() -> None:
    assert sum([1, 2]) == 3


def test_canary_fails() -> None:
    assert sum([1, 2]) == 4
'''


UNFORMATTED = f"{stages.TERRAFORM_DIR}/zz_unformatted.tf"
BAD_HCL = "locals {\n      answer    = 42\n}\n"


def run(body: Callable[[], Awaitable[T]]) -> T:
    """Run ``body`` inside one engine session."""

    async def session() -> T:
        async with dagger.connection():
            return await body()

    return anyio.run(session)


def stand_in(engine: Engine) -> Callable[[str], dagger.Container]:
    """The stages' ``image`` function, serving the local stand-ins of the pinned images."""

    def image(reference: str) -> dagger.Container:
        return dag.container().from_(engine.stand_in(reference))

    return image


def source() -> dagger.Directory:
    """The repository as the stages receive it, minus what they always ignore."""
    return dag.host().directory(str(tooling.ROOT), exclude=stages.SOURCE_IGNORE)


def with_defects() -> dagger.Directory:
    """The repository plus a failing test and a misformatted Terraform file.

    The test and lint stages get the same source, so the engine installs the project once
    for both (same inputs, same cached layer).
    """
    return source().with_new_file(CANARY, CANARY_TESTS).with_new_file(UNFORMATTED, BAD_HCL)


def test_engine_runs_the_pinned_version_and_a_container(dagger_engine: Engine) -> None:
    async def body() -> tuple[str, str]:
        version = await dag.version()
        out = await (
            dag.container()
            .from_(dagger_engine.python_image)
            .with_exec(["python3", "-c", "import sys; print(6 * 7, sys.version_info[:2])"])
            .stdout()
        )
        return version, out

    version, out = run(body)
    assert version == tooling.tool_pins()["DAGGER_VERSION"]
    assert out.strip() == "42 (3, 11)"


def test_build_stage_builds_the_image_from_the_dockerfile(dagger_engine: Engine) -> None:
    revision = subprocess.run(
        ["git", "-C", str(tooling.ROOT), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()

    async def body() -> tuple[str | None, str | None, str, str]:
        built = stages.image_build(
            source(),
            base_image=dagger_engine.python_image,
            version="9.8.7",
            revision=revision,
            source_url="https://example.invalid/kvstore",
        )
        label_version = await built.label("org.opencontainers.image.version")
        label_revision = await built.label("org.opencontainers.image.revision")
        uid = await built.with_exec(["id", "-u"]).stdout()
        help_text = await built.with_exec(["kvstore", "--help"]).stdout()
        return label_version, label_revision, uid, help_text

    label_version, label_revision, uid, help_text = run(body)
    assert label_version == "9.8.7"
    assert label_revision == revision
    assert uid.strip() == "10001", "the image must run as the fixed non-root user"
    assert "serve" in help_text


@pytest.mark.timeout(1200)
def test_test_stage_runs_pytest_and_names_the_failing_test(dagger_engine: Engine) -> None:
    async def body() -> str:
        ran = stages.test_run(stand_in(dagger_engine), with_defects(), "engine")
        try:
            await stages.run_tests(ran)
        except StageFailed as failed:
            return str(failed)
        raise AssertionError("the test stage passed although a canary test fails")

    message = run(body)
    assert "test_canary_fails" in message
    assert "test_canary_passes" not in message


@pytest.mark.timeout(1200)
def test_lint_stage_runs_every_tool_and_reports_the_misformatted_file(
    dagger_engine: Engine,
) -> None:
    async def body() -> tuple[list[str], str]:
        checks = stages.lint_checks(stand_in(dagger_engine), with_defects())
        try:
            text = await stages.run_checks("lint", checks)
        except StageFailed as failed:
            text = str(failed)
        return [c.name for c in checks], text

    names, report = run(body)
    for name in names:
        assert f" {name}: " in report, f"{name} missing from the lint report"
    assert "(exit 127)" not in report, "a tool is missing from its image"
    assert "FAIL terraform-fmt" in report
    assert "zz_unformatted.tf" in report


def test_mirror_argument_keeps_the_upstream_digest(dagger_engine: Engine) -> None:
    """The module's ``mirror`` rewrites the registry host and keeps the pinned digest.

    So a mirror must hold the upstream image byte for byte; the local stand-in (a different
    digest) is not found there, and the engine says so.
    """
    digest = images.PYTHON.partition("@")[2]

    async def body() -> str:
        module = KvstoreCi()
        module.mirror = dagger_engine.engine_registry
        python_base = cast(Callable[[], Awaitable[dagger.Container]], module.python_base)
        try:
            await python_base()
        except StageFailed as error:  # the module's own error, naming what was pulled
            return str(error)
        raise AssertionError("the mirror served an image with the upstream digest")

    message = run(body)
    assert f"{dagger_engine.engine_registry}/library/python" in message
    assert digest in message
