"""The module's ``ci`` function, the job GitHub Actions runs, run on this very tree.

This is how our own CI runs the pipeline: the same ``KvstoreCi.ci`` that ``dagger call ci``
calls, in client mode (``dagger.connection()``) through the engine built from source, on
the repository as it is checked out. It is green only when lint, the test stage (the whole
suite but the tests that need a Docker or Dagger engine, which run here, outside the
stage) and the image build are green. The one difference from ``dagger call ci``: no
registry can be pulled from here, so the module's pinned images resolve to the local
stand-ins (``scripts/dagger-engine``), through the module's one image seam
(``_reference``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # pytest's own report
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

import anyio
import dagger
import pytest
from dagger import dag
from kvstore_ci import KvstoreCi, stages
from kvstore_ci.reports import StageFailed

from tests import tooling
from tests.engine.conftest import Engine

pytestmark = [pytest.mark.engine, pytest.mark.slow]

# Where the stage's reports land, beside the outer suite's own JUnit report.
REPORTS = tooling.ROOT / "test-results" / "ci-function"


def stand_in_module(engine: Engine) -> KvstoreCi:
    """The module object with every pinned image resolved to its local stand-in."""

    class StandInImages(KvstoreCi):
        def _reference(self, reference: str) -> str:
            return engine.stand_in(reference)

    return StandInImages()


def junit_counts(report: Path) -> dict[str, int]:
    """Tests, failures, errors and skips of a pytest JUnit report."""
    root = ET.parse(report).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    return {
        key: sum(int(s.get(key, "0")) for s in suites)
        for key in ("tests", "failures", "errors", "skipped")
    }


@pytest.mark.timeout(5400)
def test_ci_function_is_green_on_this_tree(dagger_engine: Engine) -> None:
    async def body() -> str | None:
        async with dagger.connection():
            module = stand_in_module(dagger_engine)
            tree = dag.host().directory(str(tooling.ROOT), exclude=stages.SOURCE_IGNORE)
            try:
                ci = cast(Callable[..., Awaitable[dagger.Directory]], module.ci)
                reports = await ci(source=tree, fail=False)
                await reports.export(str(REPORTS))
                await ci(source=tree, fail=True)
            except StageFailed as failed:
                return str(failed)
            return None

    failure = anyio.run(body)
    junit = REPORTS / "junit.xml"  # scripts/test prints its counts
    if failure is not None:
        pytest.fail(f"`ci` failed on this tree:\n{failure}", pytrace=False)
    lint, test, build = (REPORTS / "summary.txt").read_text().splitlines()
    ran, _, total = (
        lint.removeprefix("lint: lint: ").partition(" checks passed")[0].partition(" of ")
    )
    assert ran == total and int(total) >= 8, lint
    assert (test, build) == ("test: all tests passed", "build: image built")
    assert junit_counts(junit)["skipped"] == 0, "the test stage skipped tests that CI runs"
