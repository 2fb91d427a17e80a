"""The infrastructure functions: ``terraform-plan`` and ``terraform-apply``.

What the commands are and what their exit codes mean is plain logic in
:mod:`kvstore_ci.terraform`; here they are arranged in the pinned Terraform image with the
environment's backend, the AWS credentials as secrets and the plugin cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, TypeVar

import dagger
from dagger import Doc, dag, field, object_type

from kvstore_ci import images, terraform
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
from kvstore_ci.reports import CommandFailed, StageFailed
from kvstore_ci.stages import SRC, TERRAFORM_DIR

__all__ = [
    "TerraformFunctions",
    "TerraformPlan",
    "terraform_apply_container",
    "terraform_plan_container",
]

T = TypeVar("T")

if TYPE_CHECKING:
    # `object_type` makes the class a dataclass at run time; say so to the type checker.
    from dataclasses import dataclass as _typed_as_dataclass
else:

    def _typed_as_dataclass(cls: T) -> T:
        return cls


# A command before the plan's own (init) failing means the backend or providers are out of
# reach; the plan's and apply's exit codes are read, never raised.
INIT_FAILURE = "terraform init failed: the state backend or the providers are out of reach"
INIT_ADVICE = (
    "check the AWS credentials and the network, and that the state bucket and region named"
    " in deploy/environments/<env>.yaml exist (deploy/terraform/bootstrap makes them)"
)
PLAN_ADVICE = "Terraform's output says which resource or setting it could not plan; fix it"


@object_type
@_typed_as_dataclass
class TerraformPlan:
    """A saved Terraform plan and what it says: review ``text``, then apply ``file``."""

    env: Annotated[str, Doc("The environment the plan was made for")] = field()
    file: Annotated[dagger.File, Doc("The saved plan (<env>.tfplan) for terraform-apply")] = field()
    text: Annotated[str, Doc("terraform show of the plan, for review")] = field()
    summary: Annotated[str, Doc("The plan's summary line, e.g. 'Plan: 1 to add, ...'")] = field()
    changes: Annotated[bool, Doc("Whether applying the plan would change anything")] = field()
    exit_code: Annotated[int, Doc("terraform plan -detailed-exitcode: 0 none, 2 changes")] = field()


def terraform_container(
    image: Image, source: dagger.Directory, env: Environment, aws: AwsSecrets, run_id: str
) -> dagger.Container:
    """Terraform in the environment's root, initialized against its backend."""
    container = aws.apply(image(images.TERRAFORM))
    for name, value in terraform.endpoint_variables(env).items():
        container = container.with_env_variable(name, value)
    return (
        container.with_mounted_cache(
            terraform.PLUGIN_CACHE_DIR, dag.cache_volume("kvstore-terraform-plugins")
        )
        .with_env_variable("TF_PLUGIN_CACHE_DIR", terraform.PLUGIN_CACHE_DIR)
        .with_env_variable("TF_IN_AUTOMATION", "1")
        .with_env_variable("TF_INPUT", "0")
        .with_env_variable("AWS_REGION", env.aws.region)
        .with_directory(f"{SRC}/{TERRAFORM_DIR}", source.directory(TERRAFORM_DIR))
        .with_workdir(f"{SRC}/{env.terraform.root}")
        .with_env_variable(RUN_ID_VARIABLE, run_id)
        .with_exec(terraform.init_args(env))
    )


def terraform_plan_container(
    image: Image, source: dagger.Directory, env: Environment, aws: AwsSecrets, run_id: str
) -> dagger.Container:
    """``terraform plan -detailed-exitcode -out=<env>.tfplan``; its exit code is read after."""
    return terraform_container(image, source, env, aws, run_id).with_exec(
        terraform.plan_args(env.name), expect=dagger.ReturnType.ANY
    )


def terraform_apply_container(
    image: Image,
    source: dagger.Directory,
    env: Environment,
    aws: AwsSecrets,
    *,
    plan: dagger.File,
    run_id: str,
) -> dagger.Container:
    """``terraform apply <env>.tfplan``: exactly the saved plan."""
    return (
        terraform_container(image, source, env, aws, run_id)
        .with_file(terraform.plan_file_name(env.name), plan)
        .with_exec(terraform.apply_args(env.name), expect=dagger.ReturnType.ANY)
    )


class TerraformFunctions(Functions):
    """``terraform-plan`` and ``terraform-apply``."""

    @uncached
    async def terraform_plan(
        self,
        source: Source,
        env: EnvName,
        *,
        aws_access_key_id: AwsKeyId,
        aws_secret_access_key: AwsSecretKey,
        aws_session_token: AwsSessionToken = None,
    ) -> TerraformPlan:
        """Run terraform init and plan for the environment, and return the saved plan.

        Not cached: the plan depends on the remote state, not only on the source.
        """
        environment = await self._environment(source, env, "terraform-plan")
        aws = AwsSecrets(aws_access_key_id, aws_secret_access_key, aws_session_token)
        planned = terraform_plan_container(
            self._image, source, environment, aws, self._run.run_id()
        )
        code = await self._run.exit_code(
            "terraform-plan",
            planned,
            note="0 no changes, 2 changes, anything else fails",
            failure=INIT_FAILURE,
            advice=INIT_ADVICE.replace("<env>", env),
            recorded=2,
        )
        if code not in (0, 2):
            errors = await self._run.stderr("terraform-plan", planned)
            raise CommandFailed(
                "terraform-plan",
                terraform.plan_args(env),
                code,
                errors,
                meaning="terraform plan failed",
                advice=PLAN_ADVICE,
            )
        shown = planned.with_exec(terraform.show_args(env))
        text = await self._run.stdout("terraform-show", shown)
        return TerraformPlan(
            env=env,
            file=planned.file(terraform.plan_file_name(env)),
            text=text,
            summary=terraform.plan_summary(text),
            changes=terraform.plan_outcome(code).changes,
            exit_code=code,
        )

    @uncached
    async def terraform_apply(
        self,
        source: Source,
        env: EnvName,
        *,
        aws_access_key_id: AwsKeyId,
        aws_secret_access_key: AwsSecretKey,
        aws_session_token: AwsSessionToken = None,
        plan: Annotated[
            dagger.File | None,
            Doc(
                "The reviewed plan file from terraform-plan (<env>.tfplan); without it, a plan"
                " is made now and exactly that plan is applied"
            ),
        ] = None,
    ) -> str:
        """Apply exactly a saved plan file; a stale plan is refused, never re-planned.

        Without --plan, plans first and applies that plan file (nothing when no changes).
        """
        header = ""
        if plan is None:
            made = await self.terraform_plan(
                source,
                env,
                aws_access_key_id=aws_access_key_id,
                aws_secret_access_key=aws_secret_access_key,
                aws_session_token=aws_session_token,
            )
            if not made.changes:
                return f"{made.summary or 'No changes.'} Nothing to apply.\n"
            plan, header = made.file, made.text + "\n"
        expected = terraform.plan_file_name(env)
        name = await self._run.file_name("plan-file", plan, note=f"must be {expected}")
        if name != expected:
            raise StageFailed(
                f"terraform-apply: {name!r} is not a plan for {env} (expected {expected!r})\n"
                f"  what to do: pass the plan file of terraform-plan --env {env}"
            )
        environment = await self._environment(source, env, "terraform-apply")
        aws = AwsSecrets(aws_access_key_id, aws_secret_access_key, aws_session_token)
        applied = terraform_apply_container(
            self._image, source, environment, aws, plan=plan, run_id=self._run.run_id()
        )
        advice = INIT_ADVICE.replace("<env>", env)
        code = await self._run.exit_code(
            "terraform-apply", applied, failure=INIT_FAILURE, advice=advice
        )
        output = await self._run.stdout("terraform-apply", applied)
        output += await self._run.stderr("terraform-apply", applied)
        if code != 0:
            meaning, advice = terraform.apply_failure(env, output)
            raise CommandFailed(
                "terraform-apply",
                terraform.apply_args(env),
                code,
                output,
                meaning=meaning,
                advice=advice,
            )
        return header + output
