"""What the functions decide once their steps have run, and how their failures read.

No engine runs here. The functions run unchanged with a scripted executor (a recorder of
``kvstore_ci.recorder`` that answers chosen steps with the outputs a real engine and
Terraform give), so what is tested is the function bodies: the -detailed-exitcode
decision, the plan-file name check, the stale-plan explanation, plan-then-apply, the ci
aggregate. Where an engine error is the point, the real :data:`kvstore_ci.executor.ENGINE`
converts an ``ExecError``/``QueryError`` built as the SDK builds them, so the message a
user reads is the one asserted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import anyio
import dagger
import gql
import pytest
from dagger import dag
from dagger._exceptions import QueryErrorValue
from kvstore_ci import KvstoreCi, stages
from kvstore_ci.dryrun import plan_function
from kvstore_ci.executor import ENGINE, Step
from kvstore_ci.functions.terraform import TerraformPlan
from kvstore_ci.plan import Node, functions_of, node_of
from kvstore_ci.recorder import Recorder
from kvstore_ci.reports import CommandFailed, OperationFailed, StageFailed

from tests.ci.function_flags import flags_of
from tests.tooling import ROOT

T = TypeVar("T")

PLAN_TEXT = (
    "Terraform will perform the following actions:\n\nPlan: 2 to add, 0 to change, 0 to destroy.\n"
)
CREDENTIALS_ERROR = "Error: No valid credential sources found for AWS Provider."


def exec_error(command: list[str], code: int, stdout: str = "", stderr: str = "") -> Exception:
    """An ExecError exactly as the SDK raises it for a failed withExec."""
    value = QueryErrorValue(
        f"process {' '.join(command)!r} did not complete successfully: exit code: {code}",
        extensions={
            "_type": "EXEC_ERROR",
            "cmd": command,
            "exitCode": code,
            "stdout": stdout,
            "stderr": stderr,
        },
    )
    return dagger.QueryError([value], gql.GraphQLRequest(gql.gql("query { version }")))


def query_error(message: str) -> Exception:
    """A QueryError as the SDK raises it for an operation the engine refused."""
    return dagger.QueryError([QueryErrorValue(message)], gql.GraphQLRequest(gql.gql("{ x }")))


def raising(error: Exception) -> Callable[[], Awaitable[Any]]:
    """A query that fails as the engine's would."""

    async def fail() -> Any:
        raise error

    return fail


class Scripted(Recorder):
    """Answers the scripted steps (by stage and action prefix); the others as a plan does.

    An answer that is an exception is raised by the real engine executor, which turns it
    into the module's error exactly as in a real call.
    """

    def __init__(self, answers: Mapping[tuple[str, str], object]) -> None:
        super().__init__()
        self.answers = dict(answers)
        self.steps: list[Step] = []

    async def perform(self, step: Step, query: Callable[[], Awaitable[T]], recorded: T) -> T:
        self.steps.append(step)
        for (stage, action), answer in self.answers.items():
            if step.stage == stage and step.action.startswith(action):
                if isinstance(answer, Exception):
                    return await ENGINE.perform(step, raising(answer), recorded)
                return answer  # type: ignore[return-value]
        return await super().perform(step, query, recorded)

    def ran(self, stage: str) -> list[str]:
        return [s.action for s in self.steps if s.stage == stage]


def module_with(executor: Recorder) -> KvstoreCi:
    module = KvstoreCi()
    module._executor = executor
    return module


def source() -> dagger.Directory:
    return dag.host().directory(str(ROOT), exclude=stages.SOURCE_IGNORE)


def secrets() -> dict[str, Any]:
    return {
        "aws_access_key_id": dag.secret("env://AWS_ACCESS_KEY_ID"),
        "aws_secret_access_key": dag.secret("env://AWS_SECRET_ACCESS_KEY"),
    }


def terraform_plan(executor: Recorder, env: str = "staging") -> TerraformPlan:
    async def call() -> TerraformPlan:
        return await module_with(executor).terraform_plan(source(), env, **secrets())

    return anyio.run(call)


def terraform_apply(executor: Recorder, env: str = "staging", plan: Any = None) -> str:
    async def call() -> str:
        module = module_with(executor)
        return await module.terraform_apply(source(), env, plan=plan, **secrets())

    return anyio.run(call)


# --- terraform -------------------------------------------------------------------------


def test_plan_with_changes_returns_the_saved_plan_and_its_text() -> None:
    script = Scripted({("terraform-plan", "exit-code"): 2, ("terraform-show", "stdout"): PLAN_TEXT})
    made = terraform_plan(script)
    assert (made.changes, made.exit_code, made.env) == (True, 2, "staging")
    assert made.summary == "Plan: 2 to add, 0 to change, 0 to destroy."
    assert made.text == PLAN_TEXT
    last = node_of(made.file).ops[-1]
    assert (last.name, last.args["path"]) == ("file", "staging.tfplan")


def test_plan_without_changes() -> None:
    assert terraform_plan(Scripted({("terraform-plan", "exit-code"): 0})).changes is False


def test_plan_error_names_the_command_its_exit_code_and_terraforms_words() -> None:
    script = Scripted(
        {("terraform-plan", "exit-code"): 1, ("terraform-plan", "stderr"): CREDENTIALS_ERROR}
    )
    with pytest.raises(CommandFailed) as info:
        terraform_plan(script)
    message = str(info.value)
    assert message.startswith("terraform-plan: terraform plan failed (exit 1)\n")
    assert "  command: terraform plan -input=false" in message
    assert CREDENTIALS_ERROR in message
    assert "\n  what to do: " in message
    assert script.ran("terraform-show") == [], "no plan text is read from a failed plan"


def test_a_failing_init_is_the_stage_error_never_a_raw_exec_error() -> None:
    """Offline, terraform init fails before the plan's exit code can be read."""
    init = ["terraform", "init", "-input=false", "-backend-config=bucket=b"]
    error = exec_error(init, 1, "Initializing the backend...", CREDENTIALS_ERROR)
    assert isinstance(error, dagger.ExecError)
    with pytest.raises(CommandFailed) as info:
        terraform_plan(Scripted({("terraform-plan", "exit-code"): error}))
    failed = info.value
    assert isinstance(failed, StageFailed) and not isinstance(failed, dagger.QueryError)
    assert (failed.stage, failed.command, failed.exit_code) == ("terraform-plan", tuple(init), 1)
    lines = str(failed).splitlines()
    assert lines[0] == (
        "terraform-plan: terraform init failed: the state backend or the providers are out"
        " of reach (exit 1)"
    )
    assert lines[1] == "  command: terraform init -input=false -backend-config=bucket=b"
    assert "    Initializing the backend..." in lines
    assert f"    {CREDENTIALS_ERROR}" in lines
    assert lines[-1].startswith("  what to do: check the AWS credentials")
    assert "deploy/environments/staging.yaml" in lines[-1]
    assert failed.__cause__ is None and failed.__suppress_context__, "no chained traceback"


def test_apply_without_a_plan_and_a_failing_init_fails_the_same_way() -> None:
    error = exec_error(["terraform", "init"], 1, stderr=CREDENTIALS_ERROR)
    with pytest.raises(CommandFailed, match=r"^terraform-plan: terraform init failed"):
        terraform_apply(Scripted({("terraform-plan", "exit-code"): error}))


def test_apply_refuses_another_environments_plan() -> None:
    script = Scripted({})
    with pytest.raises(StageFailed, match=r"'production\.tfplan' is not a plan for staging"):
        terraform_apply(script, "staging", dag.host().file("production.tfplan"))
    assert script.ran("terraform-apply") == [], "nothing ran"


def test_apply_applies_exactly_the_given_plan() -> None:
    script = Scripted({("terraform-apply", "stdout"): "Apply complete!"})
    given = dag.host().file("staging.tfplan")
    assert terraform_apply(script, "staging", given) == "Apply complete!"
    assert script.ran("terraform-plan") == [], "a given plan is never re-made"
    (applied,) = [s.subject for s in script.steps if s.stage == "terraform-apply"][:1]
    assert applied is not None
    (handed,) = node_of(applied).find("withFile")
    assert isinstance(handed.args["source"], Node)
    assert handed.args["source"].ops[-1].args["path"] == "staging.tfplan"


def test_a_stale_plan_is_explained_with_what_to_do() -> None:
    script = Scripted(
        {
            ("terraform-apply", "exit-code"): 1,
            ("terraform-apply", "stderr"): "Error: Saved plan is stale\n\nThe given plan ...",
        }
    )
    with pytest.raises(CommandFailed) as info:
        terraform_apply(script, "staging", dag.host().file("staging.tfplan"))
    message = str(info.value)
    assert message.startswith("terraform-apply: the staging plan is stale")
    assert "Saved plan is stale" in message
    assert "what to do: run terraform-plan again" in message


def test_apply_without_a_plan_applies_the_plan_it_made() -> None:
    script = Scripted(
        {
            ("terraform-plan", "exit-code"): 2,
            ("terraform-show", "stdout"): PLAN_TEXT,
            ("terraform-apply", "stdout"): "Apply complete!",
        }
    )
    output = terraform_apply(script, "production")
    assert output.startswith(PLAN_TEXT) and output.endswith("Apply complete!")
    (applied,) = {id(s.subject): s for s in script.steps if s.stage == "terraform-apply"}.values()
    assert applied.subject is not None
    (handed,) = node_of(applied.subject).find("withFile")
    made = next(s.subject for s in script.steps if s.stage == "terraform-plan")
    assert made is not None
    assert isinstance(handed.args["source"], Node)
    assert handed.args["source"].ops[:-1] == node_of(made).ops, "the file of that plan run"


def test_apply_without_a_plan_and_no_changes_applies_nothing() -> None:
    script = Scripted(
        {
            ("terraform-plan", "exit-code"): 0,
            ("terraform-show", "stdout"): "No changes. Your infrastructure matches.\n",
        }
    )
    output = terraform_apply(script, "staging")
    assert output == "No changes. Your infrastructure matches. Nothing to apply.\n"
    assert script.ran("terraform-apply") == []


def test_an_unknown_environment_is_named_with_what_to_do() -> None:
    with pytest.raises(StageFailed) as info:
        terraform_plan(Scripted({}), "qa")
    assert str(info.value).startswith(
        "terraform-plan: deploy/environments/qa.yaml: unknown environment 'qa'"
    )
    assert "what to do: " in str(info.value)


# --- build and publish -----------------------------------------------------------------


def test_an_image_that_cannot_be_pulled_fails_python_base_with_the_registrys_words() -> None:
    refused = query_error("failed to resolve source metadata for docker.io/library/python: 403")
    script = Scripted({("python-base", "sync"): refused})

    async def call() -> dagger.Container:
        return await module_with(script).python_base()

    with pytest.raises(OperationFailed) as info:
        anyio.run(call)
    message = str(info.value)
    assert message.startswith("python-base: sync failed\n")
    assert "failed to resolve source metadata" in message
    assert "what to do: check that the registry is reachable" in message


def test_build_is_built_before_it_is_returned() -> None:
    """Without the sync an unbuildable image surfaces as the SDK's return-type error."""
    script = Scripted({})

    async def call() -> dagger.Container:
        return await module_with(script).build(source())

    built = anyio.run(call)
    assert [(s.stage, s.action) for s in script.steps] == [("build", "sync")]
    assert script.steps[0].subject is built


def test_a_refused_push_names_the_registry_and_repository() -> None:
    script = Scripted({("publish", "publish"): query_error("failed to push: 401 Unauthorized")})

    async def call() -> str:
        module = module_with(script)
        image = dag.container().from_("localhost/kvstore@sha256:" + "a" * 64)
        return await module.publish(image, "kvstore", tag="abc", **secrets())

    with pytest.raises(StageFailed) as info:
        anyio.run(call)
    message = str(info.value)
    assert message.startswith("publish: the registry rejected the credentials for repository")
    assert "'kvstore' in <account>.dkr.ecr.us-east-1.amazonaws.com" in message


def test_an_api_error_of_the_module_is_the_stage_error() -> None:
    """ECR's or EKS's refusal, raised in the module's own process, reads as the stage."""

    def refuse(plain: Mapping[str, str]) -> str:
        assert plain == {}
        raise RuntimeError("EKS cluster 'kvstore-staging' does not exist in eu-west-1")

    async def call() -> str:
        step = Step("kubeconfig", None, "eks describe-cluster", advice="check the cluster")
        return await ENGINE.call(step, refuse, "")

    with pytest.raises(StageFailed) as info:
        anyio.run(call)
    assert str(info.value) == (
        "kubeconfig: EKS cluster 'kvstore-staging' does not exist in eu-west-1\n"
        "  what to do: check the cluster"
    )


# --- ci ----------------------------------------------------------------------------------


def test_ci_reports_every_failed_stage_in_order() -> None:
    junit = (
        '<testsuite><testcase classname="tests.test_x" name="test_bad">'
        "<failure/></testcase></testsuite>"
    )
    script = Scripted(
        {
            ("ruff-check", "exit-code"): 1,
            ("ruff-check", "stdout"): "a.py:1:1: F401 unused import",
            ("test", "exit-code"): 1,
            ("test", "contents"): junit,
            ("build", "sync"): exec_error(["pip", "wheel", "."], 1, stderr="no space left"),
        }
    )

    async def call(fail: bool) -> dagger.Directory:
        return await module_with(script).ci(source(), fail=fail)

    with pytest.raises(StageFailed) as info:
        anyio.run(call, True)
    message = str(info.value)
    assert message.index("== lint failed ==") < message.index("== test failed ==")
    assert message.index("== test failed ==") < message.index("== build failed ==")
    assert "a.py:1:1: F401 unused import" in message
    assert "tests.test_x::test_bad" in message
    assert "build: the image did not build (exit 1)" in message
    assert "no space left" in message

    reports = anyio.run(call, False)
    files = {op.args["path"]: op.args["contents"] for op in node_of(reports).find("withNewFile")}
    summary = str(files["summary.txt"]).splitlines()
    assert summary[0] == "lint: FAILED: lint: 7 of 8 checks passed"
    assert summary[1].startswith("test: FAILED: test: 1 test(s) failed")
    assert summary[2] == "build: FAILED: build: the image did not build (exit 1)"


def test_ci_green_summarises_each_stage() -> None:
    async def call() -> dagger.Directory:
        return await module_with(Scripted({})).ci(source())

    files = {
        op.args["path"]: op.args["contents"] for op in node_of(anyio.run(call)).find("withNewFile")
    }
    assert files["summary.txt"] == (
        "lint: lint: 8 of 8 checks passed\ntest: all tests passed\nbuild: image built\n"
    )


# --- every function ----------------------------------------------------------------------


class FirstStepFails(Recorder):
    """Every step fails as the engine fails it: a command exits 1, an API call refuses."""

    async def perform(self, step: Step, query: Callable[[], Awaitable[T]], recorded: T) -> T:
        planted = exec_error(["false"], 1, stderr="planted failure")
        return await ENGINE.perform(step, raising(planted), recorded)

    async def call(self, step: Step, api: Callable[[Mapping[str, str]], T], recorded: T) -> T:
        def refuse(plain: Mapping[str, str]) -> T:
            raise RuntimeError("planted refusal")

        return await ENGINE.call(Step(step.stage, None, step.action), refuse, recorded)


@pytest.mark.parametrize("name", sorted(n for n in functions_of(KvstoreCi) if n))
def test_every_function_reports_a_failed_step_as_its_own_stage_error(name: str) -> None:
    """No function awaits the engine outside the executor, nor lets an engine error out."""
    with pytest.raises(StageFailed) as info:
        plan_function(KvstoreCi, name, flags_of(name), recorder=FirstStepFails())
    message = str(info.value)
    assert "planted" in message
    assert "what to do: " in message
    assert "Traceback" not in message
