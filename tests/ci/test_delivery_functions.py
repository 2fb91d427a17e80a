"""The decisions the terraform functions make once their containers have run.

No Dagger engine runs here, so the containers are STAND-INS: small fakes that answer
``exit_code``/``stdout``/``stderr``/``file`` the way the engine's lazy objects do, with the
outputs a real Terraform gives (the real commands and their outputs are tested with a real
terraform in test_terraform.py; their wiring in test_delivery_plan.py). What is tested is
the function bodies: the -detailed-exitcode decision, the plan-file name check, the
stale-plan explanation, and plan-then-apply without a plan file.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from kvstore_ci import KvstoreCi, delivery
from kvstore_ci.reports import StageFailed

from tests.tooling import ROOT

PLAN_TEXT = (
    "Terraform will perform the following actions:\n\nPlan: 2 to add, 0 to change, 0 to destroy.\n"
)


@dataclass
class FakeFile:
    """Stands in for dagger.File."""

    path: str
    text: str = ""

    async def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    async def contents(self) -> str:
        return self.text


class FakeSource:
    """Stands in for the checkout Directory: reads the real files of this repository."""

    def file(self, path: str) -> FakeFile:
        return FakeFile(path, (ROOT / path).read_text())


@dataclass
class FakeRun:
    """Stands in for a Container whose last command has run."""

    code: int
    out: str = ""
    err: str = ""
    execs: list[list[str]] = field(default_factory=list)
    shown: str = PLAN_TEXT  # what `terraform show` prints after this run

    async def exit_code(self) -> int:
        return self.code

    async def stdout(self) -> str:
        return self.out

    async def stderr(self) -> str:
        return self.err

    def with_exec(self, args: list[str]) -> FakeRun:
        self.execs.append(args)
        return FakeRun(0, out=self.shown)

    def file(self, path: str) -> FakeFile:
        return FakeFile(path)


@dataclass
class Builders:
    """Replaces the container builders and records what they were asked for."""

    plan_run: FakeRun
    apply_run: FakeRun
    applied_plans: list[Any] = field(default_factory=list)
    planned: int = 0

    def plan(self, *args: Any, **kwargs: Any) -> FakeRun:
        self.planned += 1
        return self.plan_run

    def apply(self, *args: Any, plan: Any, **kwargs: Any) -> FakeRun:
        self.applied_plans.append(plan)
        return self.apply_run


@pytest.fixture
def builders(monkeypatch: pytest.MonkeyPatch) -> Builders:
    fakes = Builders(plan_run=FakeRun(2), apply_run=FakeRun(0, out="Apply complete!"))
    monkeypatch.setattr(delivery, "terraform_plan_container", fakes.plan)
    monkeypatch.setattr(delivery, "terraform_apply_container", fakes.apply)
    return fakes


def credentials() -> dict[str, Any]:
    return {"aws_access_key_id": object(), "aws_secret_access_key": object()}


def plan(env: str = "staging") -> Any:
    module = KvstoreCi()
    return asyncio.run(module.terraform_plan(FakeSource(), env, **credentials()))  # type: ignore[arg-type]


def apply(env: str = "staging", plan_file: Any = None) -> str:
    module = KvstoreCi()
    return asyncio.run(
        module.terraform_apply(FakeSource(), env, plan=plan_file, **credentials())  # type: ignore[arg-type]
    )


def test_plan_with_changes(builders: Builders) -> None:
    made = plan()
    assert (made.changes, made.exit_code, made.env) == (True, 2, "staging")
    assert made.summary == "Plan: 2 to add, 0 to change, 0 to destroy."
    assert made.text == PLAN_TEXT
    assert made.file.path == "staging.tfplan"
    assert builders.plan_run.execs == [["terraform", "show", "-no-color", "staging.tfplan"]]


def test_plan_without_changes(builders: Builders) -> None:
    builders.plan_run.code = 0
    assert plan().changes is False


def test_plan_error_fails_with_terraform_output(builders: Builders) -> None:
    builders.plan_run.code = 1
    builders.plan_run.err = "Error: No valid credential sources found"
    with pytest.raises(
        StageFailed,
        match=r"^terraform-plan: terraform plan failed \(exit 1\): "
        r"Error: No valid credential sources found",
    ):
        plan()


def test_apply_refuses_another_environment_plan(builders: Builders) -> None:
    with pytest.raises(StageFailed, match=r"'production\.tfplan' is not a plan for staging"):
        apply("staging", FakeFile("production.tfplan"))
    assert builders.applied_plans == [], "nothing ran"


def test_apply_applies_the_given_plan(builders: Builders) -> None:
    given = FakeFile("staging.tfplan")
    assert apply("staging", given) == "Apply complete!"
    assert builders.applied_plans == [given]
    assert builders.planned == 0, "a given plan is never re-made"


def test_stale_plan_is_explained(builders: Builders) -> None:
    builders.apply_run = FakeRun(1, err="Error: Saved plan is stale\n\nThe given plan file ...")
    with pytest.raises(StageFailed) as info:
        apply("staging", FakeFile("staging.tfplan"))
    assert str(info.value).startswith("terraform-apply: the staging plan is stale")
    assert "Saved plan is stale" in str(info.value)


def test_apply_without_a_plan_applies_the_plan_it_made(builders: Builders) -> None:
    output = apply("production")
    assert builders.planned == 1
    (applied,) = builders.applied_plans
    assert applied.path == "production.tfplan"
    assert output.startswith(PLAN_TEXT) and output.endswith("Apply complete!")


def test_apply_without_a_plan_and_no_changes_applies_nothing(builders: Builders) -> None:
    builders.plan_run.code = 0
    builders.plan_run.shown = "No changes. Your infrastructure matches the configuration.\n"
    output = apply("staging")
    assert output.startswith("No changes. Your infrastructure matches the configuration.")
    assert output.rstrip().endswith("Nothing to apply.")
    assert builders.applied_plans == []


def test_unknown_environment_is_named(builders: Builders) -> None:
    with pytest.raises(ValueError, match=r"deploy/environments/qa\.yaml: unknown environment"):
        plan("qa")
