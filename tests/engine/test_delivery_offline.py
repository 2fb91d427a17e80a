"""Every delivery function, run for real until its first external dependency, which is absent.

Each function runs through the engine (client mode) on the repository, with the staging
environment file rewritten so that everything it would reach (the AWS APIs through
``aws.endpoint``, the git remote, Argo CD, the cluster in the kubeconfig) is a closed port
on the loopback address of whoever dials it: the stage's container or this process. So
nothing leaves the machine, and each function meets the state a user meets without AWS, a
cluster or Argo CD. What is asserted is what that user reads: the module's own stage error
naming the stage, what it ran and why it failed, and what to do; never the SDK's
``ExecError`` or a Python traceback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import anyio
import dagger
import pytest
from dagger import dag
from kvstore_ci import stages
from kvstore_ci.environments import environment_path
from kvstore_ci.reports import StageFailed

from tests import tooling
from tests.engine.conftest import Engine
from tests.engine.test_ci_function import stand_in_module

pytestmark = [pytest.mark.engine, pytest.mark.slow]

# Nothing listens on the discard port; a connection there is refused at once.
CLOSED = "127.0.0.1:9"
DIGEST = "sha256:" + "ab" * 32


def offline_staging() -> str:
    """The staging environment file with every endpoint on a closed loopback port."""
    text = (tooling.ROOT / environment_path("staging")).read_text()
    replaced = {
        "  repository: https://github.com/example-org/kvstore\n": (
            f"  repository: http://{CLOSED}/kvstore.git\n"
        ),
        "  region: eu-west-1\n": f"  region: eu-west-1\n  endpoint: http://{CLOSED}\n",
        "  server: https://argocd.staging.kvstore.internal\n": f"  server: https://{CLOSED}\n",
    }
    for old, new in replaced.items():
        assert old in text, f"{environment_path('staging')} no longer has {old!r}"
        text = text.replace(old, new, 1)
    return text


KUBECONFIG = f"""apiVersion: v1
kind: Config
clusters:
- name: offline
  cluster:
    server: https://{CLOSED}
    insecure-skip-tls-verify: true
contexts:
- name: offline
  context: {{cluster: offline, user: offline, namespace: kvstore}}
current-context: offline
users:
- name: offline
  user: {{token: not-a-real-token}}
"""


@dataclass(frozen=True)
class Case:
    """One function call and what its error must say."""

    function: str
    arguments: Callable[[dagger.Directory], dict[str, Any]]
    stage: str  # the stage the error names first
    says: tuple[str, ...]  # what else the message must contain (the command, the cause)


def aws() -> dict[str, Any]:
    return {
        "aws_access_key_id": dag.set_secret("aws-key-id", "AKIAOFFLINEOFFLINE00"),
        "aws_secret_access_key": dag.set_secret("aws-secret", "offline-secret-access-key"),
    }


def token(name: str) -> dagger.Secret:
    return dag.set_secret(name, f"offline-{name}")


CASES = [
    Case(
        "terraform_plan",
        lambda src: {"source": src, "env": "staging", **aws()},
        "terraform-plan",
        ("command: terraform init", CLOSED),
    ),
    Case(
        "terraform_apply",
        lambda src: {"source": src, "env": "staging", **aws()},
        "terraform-",
        ("command: terraform init", CLOSED),
    ),
    Case(
        "kubeconfig",
        lambda src: {"source": src, "env": "staging", **aws()},
        "kubeconfig",
        (CLOSED,),
    ),
    Case(
        "helm_upgrade",
        lambda src: {
            "source": src,
            "env": "staging",
            "image": DIGEST,
            "kubeconfig": dag.set_secret("kubeconfig", KUBECONFIG),
            "timeout": "30s",
        },
        "helm-upgrade",
        ("command: helm", CLOSED),
    ),
    Case(
        "promote",
        lambda src: {
            "source": src,
            "env": "staging",
            "image": DIGEST,
            "source_revision": "0" * 40,
            "git_token": token("git-token"),
        },
        "promote",
        (CLOSED,),
    ),
    Case(
        "argocd_sync",
        lambda src: {
            "source": src,
            "env": "staging",
            "token": token("argocd-token"),
            "timeout": 20,
        },
        "argocd-sync",
        (CLOSED,),
    ),
    Case(
        "deploy",
        lambda src: {
            "source": src,
            "env": "staging",
            "revision": "0" * 40,
            "git_token": token("git-token"),
            "argocd_token": token("argocd-token"),
            **aws(),
        },
        "ecr-login",  # the build before it works offline
        (CLOSED,),
    ),
    Case(
        "rollback",
        lambda src: {
            "source": src,
            "env": "staging",
            "git_token": token("git-token"),
            "argocd_token": token("argocd-token"),
            "timeout": 20,
        },
        "rollback",
        (CLOSED,),
    ),
    Case(
        "deploy_monitoring",
        lambda src: {
            "source": src,
            "env": "staging",
            "argocd_token": token("argocd-token"),
            "timeout": 20,
        },
        "argocd-sync",  # its first step syncs the monitoring Applications
        (CLOSED, "unreachable"),
    ),
]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("case", CASES, ids=[c.function for c in CASES])
def test_delivery_function_fails_offline_with_its_stage_error(
    dagger_engine: Engine, case: Case
) -> None:
    async def body() -> BaseException | None:
        async with dagger.connection():
            source = (
                dag.host()
                .directory(str(tooling.ROOT), exclude=stages.SOURCE_IGNORE)
                .with_new_file(environment_path("staging"), offline_staging())
            )
            module = stand_in_module(dagger_engine)
            function = cast(Callable[..., Awaitable[object]], getattr(module, case.function))
            try:
                await function(**case.arguments(source))
            except Exception as error:  # what reaches `dagger call` is asserted below
                return error
            return None

    error = anyio.run(body)
    assert error is not None, f"{case.function} succeeded although nothing is reachable"
    message = str(error)
    assert isinstance(error, StageFailed), f"{type(error).__name__} escaped: {message}"
    assert message.startswith(case.stage), message
    assert "what to do:" in message, message
    for expected in case.says:
        assert expected in message, f"{expected!r} missing from:\n{message}"
    assert "Traceback" not in message
