"""The Terraform commands of the infrastructure pipeline and what their results mean.

The stages run exactly these argument lists (the plan tests read them back from the Dagger
graph, and the tests here run them with a real ``terraform``):

- ``init``: no prompts, the environment's S3 backend given as ``-backend-config`` values so
  the state location is read from the environment file, not from whoever runs it;
- ``plan``: ``-detailed-exitcode`` and ``-out=<env>.tfplan``; exit 0 means no changes,
  2 means changes to apply, anything else is an error (:func:`plan_outcome`);
- ``apply``: of that saved plan file and nothing else, so what was reviewed is what is
  applied. Terraform refuses a plan whose state has moved on since it was made; that
  refusal is turned into a message saying what to do (:func:`explain_apply_failure`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kvstore_ci.environments import Environment

__all__ = [
    "PLUGIN_CACHE_DIR",
    "PlanOutcome",
    "TerraformError",
    "apply_args",
    "apply_failure",
    "explain_apply_failure",
    "init_args",
    "plan_args",
    "plan_file_name",
    "plan_outcome",
    "plan_summary",
    "show_args",
]

PLUGIN_CACHE_DIR = "/root/.terraform.d/plugin-cache"
"""Where providers are cached between runs (a Dagger cache volume is mounted there)."""

LOCK_TIMEOUT = "-lock-timeout=5m"
"""Wait for another run's state lock instead of failing at once."""


class TerraformError(RuntimeError):
    """A Terraform command failed; the message says which and why."""


@dataclass(frozen=True)
class PlanOutcome:
    """What ``terraform plan -detailed-exitcode`` said."""

    exit_code: int
    changes: bool

    @property
    def meaning(self) -> str:
        """The exit code in words."""
        return "changes to apply" if self.changes else "no changes"


def plan_file_name(env: str) -> str:
    """The saved plan's file name; it carries the environment so apply can check it."""
    return f"{env}.tfplan"


def init_args(env: Environment) -> list[str]:
    """``terraform init`` for ``env``: non-interactive, the backend from the environment."""
    backend = env.terraform.backend
    return [
        "terraform",
        "init",
        "-input=false",
        "-no-color",
        LOCK_TIMEOUT,
        f"-backend-config=bucket={backend.bucket}",
        f"-backend-config=key={backend.key}",
        f"-backend-config=region={backend.region}",
        # an S3 emulator or proxy serves buckets by path, not by host name
        *(["-backend-config=use_path_style=true"] if env.aws.endpoint else []),
    ]


def endpoint_variables(env: Environment) -> dict[str, str]:
    """The variables pointing Terraform's AWS clients at ``aws.endpoint``, when one is set.

    The S3 backend's own clients (S3 for the state, STS for the credentials) and the AWS
    provider's read them.
    """
    if not env.aws.endpoint:
        return {}
    names = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_STS")
    return dict.fromkeys(names, env.aws.endpoint)


def plan_args(env_name: str) -> list[str]:
    """``terraform plan`` saving the plan; variables come from the root's terraform.tfvars."""
    return [
        "terraform",
        "plan",
        "-input=false",
        "-no-color",
        LOCK_TIMEOUT,
        "-detailed-exitcode",
        f"-out={plan_file_name(env_name)}",
    ]


def show_args(env_name: str) -> list[str]:
    """``terraform show`` of the saved plan, the text reviewers read."""
    return ["terraform", "show", "-no-color", plan_file_name(env_name)]


def apply_args(env_name: str) -> list[str]:
    """``terraform apply`` of exactly the saved plan (no prompt: a saved plan is approved)."""
    return [
        "terraform",
        "apply",
        "-input=false",
        "-no-color",
        LOCK_TIMEOUT,
        plan_file_name(env_name),
    ]


def plan_outcome(exit_code: int, stderr: str = "") -> PlanOutcome:
    """Read ``-detailed-exitcode``: 0 no changes, 2 changes, anything else an error."""
    if exit_code == 0:
        return PlanOutcome(exit_code, changes=False)
    if exit_code == 2:
        return PlanOutcome(exit_code, changes=True)
    detail = stderr.strip() or "no error output"
    raise TerraformError(f"terraform plan failed (exit {exit_code}): {detail}")


_SUMMARY = re.compile(
    r"^(Plan: \d+ to add, \d+ to change, \d+ to destroy\.|No changes\..*)$", re.MULTILINE
)


def plan_summary(text: str) -> str:
    """The one-line summary of a plan's text (``Plan: 1 to add, ...`` or ``No changes.``)."""
    match = _SUMMARY.search(text)
    return match.group(1) if match else ""


def apply_failure(env_name: str, output: str) -> tuple[str, str]:
    """What a failed ``terraform apply`` of a saved plan means, and what to do about it."""
    if "Saved plan is stale" in output:
        return (
            f"the {env_name} plan is stale: the state changed after it was made (another"
            " apply ran in between), so it is not applied",
            "run terraform-plan again, review the new plan and apply that one",
        )
    if "Failed to load" in output and "plan" in output:
        return (
            f"{plan_file_name(env_name)} is not a plan file terraform can read",
            f"make a new plan with terraform-plan --env {env_name}",
        )
    return (
        f"terraform apply of the {env_name} plan failed",
        "Terraform's output names the resource that failed: fix it, plan again and apply",
    )


def explain_apply_failure(env_name: str, exit_code: int, output: str) -> str:
    """:func:`apply_failure` as one message, with Terraform's output after it."""
    text = output.strip()
    meaning, advice = apply_failure(env_name, text)
    if meaning.startswith("terraform apply of"):
        return f"{meaning} (exit {exit_code}):\n{text}"
    return f"{meaning}. {advice[0].upper()}{advice[1:]}.\n{text}"
