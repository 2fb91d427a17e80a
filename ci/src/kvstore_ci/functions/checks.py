"""The checks: ``lint``, ``test`` and ``build`` (``dagger check``), and ``ci``, which runs them all.

Each check needs no argument, so ``dagger check`` runs all three on the module's own
repository; ``ci`` runs the same three concurrently and reports every failure at once,
which is what a CI job wants.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import anyio
import dagger
from dagger import Doc, dag

from kvstore_ci import reports, stages
from kvstore_ci.functions.base import Source, check, function
from kvstore_ci.functions.build import BuildFunctions

__all__ = ["CI_STAGES", "CheckFunctions"]

# The stages `ci` runs concurrently, in the order it reports them.
CI_STAGES = ("lint", "test", "build")


class CheckFunctions(BuildFunctions):
    """``lint``, ``test`` (checks; ``build`` is the third) and ``ci``."""

    @function
    @check
    async def lint(self, source: Source) -> str:
        """Run ruff, mypy, yamllint, terraform fmt, helm lint and actionlint, and report all.

        Every tool runs even when another fails; the error lists every failing tool with
        its output. Returns the summary when all pass.
        """
        checks = stages.lint_checks(self._image, source)
        return await stages.run_checks("lint", checks, self._run)

    @function
    @check
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
        """Run the test suite in the pinned Python image and return the JUnit XML report.

        A failure raises an error that names every failing test.
        """
        return await stages.run_tests(stages.test_run(self._image, source, select), self._run)

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
        """Run lint, test and build at the same time, and report every failure, not the first.

        Returns a directory with the JUnit report (junit.xml), the lint summary (lint.txt)
        and a one-line-per-stage summary (summary.txt), for `export --path=test-results`.
        Every stage's commands are cached whatever their outcome, so calling `ci` again
        after `ci --fail=false` costs nothing and raises the same failures.
        """
        outcomes: dict[str, str] = {}
        failures: dict[str, str] = {}
        tests = stages.test_run(self._image, source, stages.DEFAULT_TEST_SELECTION)

        async def run_lint() -> str:
            return await self.lint(source)

        async def run_test() -> str:
            await stages.run_tests(tests, self._run)
            return "all tests passed"

        async def run_build() -> str:
            await self._built(self._image_build(source))
            return "image built"

        async def run(name: str, stage: Callable[[], Awaitable[str]]) -> None:
            try:
                outcomes[name] = await stage()
            except Exception as error:  # every failure is reported, none stops the others
                failures[name] = str(error)

        async with anyio.create_task_group() as group:
            for name, stage in zip(CI_STAGES, (run_lint, run_test, run_build), strict=True):
                group.start_soon(run, name, stage)
        if failures and fail:
            raise reports.StageFailed(reports.stage_failures(failures, CI_STAGES))
        results = {**outcomes, **{name: f"FAILED: {error}" for name, error in failures.items()}}
        summary = "".join(f"{name}: {results[name].splitlines()[0]}\n" for name in CI_STAGES)
        reports_dir = (
            dag.directory()
            .with_new_file("lint.txt", results["lint"] + "\n")
            .with_new_file("summary.txt", summary)
        )
        try:  # no report when the stage failed before pytest ran (an install, a pull)
            junit = await self._run.contents("test", tests.file(stages.JUNIT_REPORT))
        except reports.StageFailed:
            return reports_dir
        return reports_dir.with_new_file("junit.xml", junit)
