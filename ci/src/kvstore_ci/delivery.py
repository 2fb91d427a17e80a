"""The delivery stages of the module: terraform, kubeconfig, helm, promotion, Argo CD, deploy,
rollback, monitoring and change detection.

:class:`Delivery` is mixed into the module object ``KvstoreCi``, so these are ordinary
``dagger call`` functions. Each one only arranges containers; what they run is plain code
tested on its own (:mod:`kvstore_ci.terraform`, :mod:`kvstore_ci.kube`,
:mod:`kvstore_ci.eks_token`, :mod:`kvstore_ci.promotion`, :mod:`kvstore_ci.argocd`,
:mod:`kvstore_ci.affected`). Every function that is awaited has a ``_plan_<name>``
companion built from the same container builders, which ``python -m kvstore_ci plan`` and
the plan tests read without an engine.

Rules every stage here follows:

- credentials are ``dagger.Secret`` values, reaching containers only through
  ``with_secret_variable`` / ``with_mounted_secret``;
- functions that change the world are ``cache="never"`` and their commands carry a fresh
  :data:`RUN_ID_VARIABLE`, so the engine never replays a deploy from its cache;
- images come from :mod:`kvstore_ci.images`, pinned by digest and mirrored on request.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeVar, cast

import anyio
import dagger
from dagger import DefaultPath, Doc, Ignore, dag, field, function, object_type
from ruamel.yaml import YAML

from kvstore_ci import eks_token, images, kube, terraform
from kvstore_ci.environments import (
    ENVIRONMENTS,
    Environment,
    EnvironmentConfigError,
    environment_path,
    parse,
)
from kvstore_ci.plan import Stage
from kvstore_ci.promotion import DIGEST, PromotionError, parse_image_reference
from kvstore_ci.reports import StageFailed
from kvstore_ci.stages import PIP_CACHE, SOURCE_IGNORE, SRC, TERRAFORM_DIR

__all__ = ["RUN_ID_VARIABLE", "AwsSecrets", "Delivery", "TerraformPlan"]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

if TYPE_CHECKING:
    # `object_type` makes the class a dataclass at run time; say so to the type checker.
    from dataclasses import dataclass as _typed_as_dataclass
else:

    def _typed_as_dataclass(cls: T) -> T:
        return cls


# Stands for a digest a plan cannot know yet (the one publish will return).
PLACEHOLDER_DIGEST = "sha256:" + "0" * 64

RUN_ID_VARIABLE = "KVSTORE_CI_RUN_ID"
"""Set to a fresh value before every command with side effects: a cache buster."""

HELM_CACHE = "/cache/helm"
KUBECONFIG_PATH = "/run/secrets/kubeconfig"
RUNNER_DIR = "/opt/kvstore-ci"
CLONE_DIR = "/tmp/kvstore-promotion"  # noqa: S108 - inside the runner container

# Stages never see local environments or caches; `affected` also needs the git history.
Source = Annotated[
    dagger.Directory,
    DefaultPath("/"),
    Ignore(SOURCE_IGNORE),
    Doc("The repository checkout (defaults to the repository holding this module)."),
]
Repository = Annotated[
    dagger.Directory,
    DefaultPath("/"),
    Ignore([p for p in SOURCE_IGNORE if p != ".git"]),
    Doc("The repository checkout with its .git directory (defaults to this repository)."),
]
EnvName = Annotated[str, Doc("The environment: staging or production (deploy/environments/)")]
AwsKeyId = Annotated[dagger.Secret, Doc("AWS access key id (e.g. env://AWS_ACCESS_KEY_ID)")]
AwsSecretKey = Annotated[
    dagger.Secret, Doc("AWS secret access key (e.g. env://AWS_SECRET_ACCESS_KEY)")
]
AwsSessionToken = Annotated[
    dagger.Secret | None,
    Doc("AWS session token, for temporary (OIDC) credentials (e.g. env://AWS_SESSION_TOKEN)"),
]
Timeout = Annotated[str, Doc("How long helm or kubectl may wait, as a Go duration (e.g. 10m)")]


def uncached(func: F) -> F:
    """A module function Dagger never serves from its function cache (it changes the world)."""
    register: Callable[[F], F] = function(cache="never")  # type: ignore[call-overload]
    return register(func)


def new_run_id() -> str:
    """A value no earlier run used, for :data:`RUN_ID_VARIABLE`."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class AwsSecrets:
    """The AWS credentials a stage was given, as secrets."""

    access_key_id: dagger.Secret
    secret_access_key: dagger.Secret
    session_token: dagger.Secret | None = None

    def apply(self, container: dagger.Container) -> dagger.Container:
        """``container`` with the standard AWS variables set from the secrets."""
        container = container.with_secret_variable(
            "AWS_ACCESS_KEY_ID", self.access_key_id
        ).with_secret_variable("AWS_SECRET_ACCESS_KEY", self.secret_access_key)
        if self.session_token is not None:
            container = container.with_secret_variable("AWS_SESSION_TOKEN", self.session_token)
        return container

    def named(self) -> dict[str, dagger.Secret]:
        """The secrets by argument name, for plans."""
        found = {
            "aws-access-key-id": self.access_key_id,
            "aws-secret-access-key": self.secret_access_key,
        }
        if self.session_token is not None:
            found["aws-session-token"] = self.session_token
        return found

    async def plaintext(self) -> eks_token.AwsCredentials:
        """The values, for API calls the module itself makes (never put into containers)."""
        session = await self.session_token.plaintext() if self.session_token else None
        return eks_token.AwsCredentials(
            await self.access_key_id.plaintext(),
            await self.secret_access_key.plaintext(),
            session,
        )


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


# --- container builders (lazy; shared by the functions and their plans) --------------------

Image = Callable[[str], dagger.Container]


def terraform_container(
    image: Image, source: dagger.Directory, env: Environment, aws: AwsSecrets, run_id: str
) -> dagger.Container:
    """Terraform in the environment's root, initialized against its backend."""
    return (
        aws.apply(image(images.TERRAFORM))
        .with_mounted_cache(
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


def with_kubeconfig(container: dagger.Container, kubeconfig: dagger.Secret) -> dagger.Container:
    """``container`` with the kubeconfig mounted as a secret file."""
    return container.with_mounted_secret(KUBECONFIG_PATH, kubeconfig).with_env_variable(
        "KUBECONFIG", KUBECONFIG_PATH
    )


def helm_container(
    image: Image, source: dagger.Directory, kubeconfig: dagger.Secret, run_id: str
) -> dagger.Container:
    """helm with the repository's Kubernetes directory, a cache volume and the kubeconfig."""
    return (
        with_kubeconfig(image(images.HELM), kubeconfig)
        .with_mounted_cache(HELM_CACHE, dag.cache_volume("kvstore-helm"))
        .with_env_variable("HELM_CACHE_HOME", HELM_CACHE)
        .with_directory(f"{SRC}/{kube.KUBERNETES_DIR}", source.directory(kube.KUBERNETES_DIR))
        .with_workdir(SRC)
        .with_env_variable(RUN_ID_VARIABLE, run_id)
    )


def helm_upgrade_container(
    image: Image,
    source: dagger.Directory,
    env: Environment,
    *,
    reference: str,
    kubeconfig: dagger.Secret,
    timeout: str,
    run_id: str,
) -> dagger.Container:
    """upgrade --install --atomic --wait, then helm test, then the status as JSON."""
    repository, digest = split_reference(reference, env)
    return (
        helm_container(image, source, kubeconfig, run_id)
        .with_exec(kube.helm_upgrade_args(env, repository, digest, timeout))
        .with_exec(kube.helm_test_args(env))
        .with_exec(kube.helm_status_args(env))
    )


def kubectl_container(image: Image, kubeconfig: dagger.Secret, run_id: str) -> dagger.Container:
    """kubectl with the kubeconfig."""
    return with_kubeconfig(image(images.KUBECTL), kubeconfig).with_env_variable(
        RUN_ID_VARIABLE, run_id
    )


def smoke_container(
    image: Image, env: Environment, kubeconfig: dagger.Secret, timeout: str, run_id: str
) -> dagger.Container:
    """Wait for the StatefulSet's rollout, then health, put, get and del in a member."""
    return (
        kubectl_container(image, kubeconfig, run_id)
        .with_exec(kube.rollout_args(env, timeout))
        .with_exec(kube.smoke_args(env, run_id))
    )


def runner(image: Image, source: dagger.Directory) -> dagger.Container:
    """Python with git and this package installed: runs ``python -m kvstore_ci ...``.

    Only ``ci/`` and the lock file go in, so a change elsewhere keeps the install cached.
    """
    package = (
        dag.directory()
        .with_directory("ci", source.directory("ci"))
        .with_file("constraints.txt", source.file("constraints.txt"))
    )
    return (
        image(images.PYTHON_GIT)
        .with_mounted_cache(PIP_CACHE, dag.cache_volume("kvstore-pip"))
        .with_env_variable("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .with_env_variable("PIP_ROOT_USER_ACTION", "ignore")
        .with_directory(RUNNER_DIR, package)
        .with_workdir(RUNNER_DIR)
        .with_exec(["pip", "install", "--constraint", "constraints.txt", "./ci"])
    )


def promote_container(
    image: Image,
    source: dagger.Directory,
    env: Environment,
    *,
    reference: str,
    source_revision: str,
    git_token: dagger.Secret,
    remote: str,
    run_id: str,
) -> dagger.Container:
    """``python -m kvstore_ci promote``: edit the values file, commit, push (with retries)."""
    command = [
        "python",
        "-m",
        "kvstore_ci",
        "promote",
        "--env",
        env.name,
        "--image",
        reference,
        "--source-revision",
        source_revision,
        *_git_flags(env, remote),
    ]
    return (
        runner(image, source)
        .with_secret_variable("GIT_TOKEN", git_token)
        .with_env_variable(RUN_ID_VARIABLE, run_id)
        .with_exec(command)
    )


def rollback_container(
    image: Image,
    source: dagger.Directory,
    env: Environment,
    *,
    git_token: dagger.Secret,
    remote: str,
    run_id: str,
) -> dagger.Container:
    """``python -m kvstore_ci rollback``: revert the environment's last promotion, push."""
    command = [
        "python",
        "-m",
        "kvstore_ci",
        "rollback",
        "--env",
        env.name,
        *_git_flags(env, remote),
    ]
    return (
        runner(image, source)
        .with_secret_variable("GIT_TOKEN", git_token)
        .with_env_variable(RUN_ID_VARIABLE, run_id)
        .with_exec(command)
    )


def _git_flags(env: Environment, remote: str) -> list[str]:
    return ["--remote", remote or env.repository, "--branch", env.branch, "--workdir", CLONE_DIR]


def argocd_container(
    image: Image,
    source: dagger.Directory,
    env: Environment,
    *,
    token: dagger.Secret,
    application: str,
    revision: str,
    timeout: int,
    run_id: str,
) -> dagger.Container:
    """``python -m kvstore_ci argocd-sync``: sync one application and wait for it."""
    command = [
        "python",
        "-m",
        "kvstore_ci",
        "argocd-sync",
        "--server",
        env.argocd.server,
        "--application",
        application,
        "--revision",
        revision,
        "--timeout",
        str(timeout),
    ]
    return (
        runner(image, source)
        .with_secret_variable("ARGOCD_AUTH_TOKEN", token)
        .with_env_variable(RUN_ID_VARIABLE, run_id)
        .with_exec(command)
    )


def affected_container(
    image: Image, repository: dagger.Directory, base: str, head: str
) -> dagger.Container:
    """``python -m kvstore_ci affected`` over the repository's history."""
    return (
        runner(image, repository)
        .with_directory(SRC, repository)
        .with_exec(["git", "config", "--global", "--add", "safe.directory", SRC])
        .with_exec(
            [
                "python",
                "-m",
                "kvstore_ci",
                "affected",
                "--repo",
                SRC,
                "--base",
                base,
                "--head",
                head,
                "--json",
            ]
        )
    )


def split_reference(reference: str, env: Environment) -> tuple[str, str]:
    """Repository and digest of an image given as ``repo@sha256:...`` or a bare digest.

    A bare digest means the environment's own ECR repository.
    """
    try:
        repository, digest = parse_image_reference(reference)
    except PromotionError:
        raise StageFailed(
            f"image {reference!r} is not pinned by digest: give <repository>@sha256:<64 hex>"
            " (what publish returns) or a bare sha256:<64 hex>"
        ) from None
    return repository or env.image_repository, digest


def _plan_environment(name: str) -> Environment:
    """An environment read from the local checkout, for plans (which cannot await)."""
    from kvstore_ci.dryrun import context_root  # noqa: PLC0415 - plans only
    from kvstore_ci.environments import load  # noqa: PLC0415

    return load(context_root(Path.cwd()), name)


def _tail(text: str, limit: int = 4000) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


def _exec_failure(stage: str, error: dagger.ExecError, meaning: str) -> StageFailed:
    """One readable error for a failed command: what it means, then the tool's own words."""
    output = _tail("\n".join(part for part in (error.stdout, error.stderr) if part))
    return StageFailed(f"{stage}: {meaning} (exit {error.exit_code})\n{output}")


class _Pipeline(Protocol):
    """The functions of the module object that the delivery stages compose with."""

    mirror: str

    def build(
        self, source: dagger.Directory, version: str = "", revision: str = "", source_url: str = ""
    ) -> dagger.Container: ...

    async def publish(
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
    ) -> str: ...


class Delivery:
    """The delivery functions of ``KvstoreCi`` (mixed in; see the module docstring)."""

    def _pipeline(self) -> _Pipeline:
        return cast(_Pipeline, self)

    def _delivery_image(self, reference: str) -> dagger.Container:
        """A container from a pinned image, through the module's mirror when set."""
        mirror = str(getattr(self, "mirror", ""))
        return dag.container().from_(images.with_mirror(reference, mirror))

    async def _environment(self, source: dagger.Directory, name: str) -> Environment:
        """The environment file ``name`` read from ``source`` and validated."""
        path = environment_path(name)
        if name not in ENVIRONMENTS:
            raise EnvironmentConfigError(
                f"{path}: unknown environment {name!r}; known: {', '.join(ENVIRONMENTS)}"
            )
        return parse(await source.file(path).contents(), path, expected_name=name)

    # --- infrastructure ------------------------------------------------------------------

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
        """terraform init and plan for the environment; returns the saved plan and its text.

        Not cached: the plan depends on the remote state, not only on the source.
        """
        environment = await self._environment(source, env)
        aws = AwsSecrets(aws_access_key_id, aws_secret_access_key, aws_session_token)
        planned = terraform_plan_container(
            self._delivery_image, source, environment, aws, new_run_id()
        )
        code = await planned.exit_code()
        errors = "" if code in (0, 2) else _tail(await planned.stderr())
        try:
            outcome = terraform.plan_outcome(code, errors)
        except terraform.TerraformError as error:
            raise StageFailed(f"terraform-plan: {error}") from error
        text = await planned.with_exec(terraform.show_args(env)).stdout()
        return TerraformPlan(
            env=env,
            file=planned.file(terraform.plan_file_name(env)),
            text=text,
            summary=terraform.plan_summary(text),
            changes=outcome.changes,
            exit_code=code,
        )

    def _plan_terraform_plan(
        self,
        source: dagger.Directory,
        env: str,
        *,
        aws_access_key_id: dagger.Secret,
        aws_secret_access_key: dagger.Secret,
        aws_session_token: dagger.Secret | None = None,
    ) -> list[Stage]:
        aws = AwsSecrets(aws_access_key_id, aws_secret_access_key, aws_session_token)
        planned = terraform_plan_container(
            self._delivery_image, source, _plan_environment(env), aws, "<run-id>"
        )
        return [
            Stage(
                "terraform-plan",
                planned,
                (
                    "exit-code: 0 no changes, 2 changes, anything else fails",
                    f"stdout of {' '.join(terraform.show_args(env))}",
                    f"file {terraform.plan_file_name(env)}",
                ),
            )
        ]

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
        if (name := await plan.name()) != expected:
            raise StageFailed(
                f"terraform-apply: {name!r} is not a plan for {env} (expected {expected!r}"
                " from terraform-plan --env " + env + ")"
            )
        environment = await self._environment(source, env)
        aws = AwsSecrets(aws_access_key_id, aws_secret_access_key, aws_session_token)
        applied = terraform_apply_container(
            self._delivery_image, source, environment, aws, plan=plan, run_id=new_run_id()
        )
        code = await applied.exit_code()
        output = await applied.stdout() + await applied.stderr()
        if code != 0:
            raise StageFailed(
                "terraform-apply: " + terraform.explain_apply_failure(env, code, _tail(output))
            )
        return header + output

    def _plan_terraform_apply(
        self,
        source: dagger.Directory,
        env: str,
        *,
        aws_access_key_id: dagger.Secret,
        aws_secret_access_key: dagger.Secret,
        aws_session_token: dagger.Secret | None = None,
        plan: dagger.File | None = None,
    ) -> list[Stage]:
        environment = _plan_environment(env)
        aws = AwsSecrets(aws_access_key_id, aws_secret_access_key, aws_session_token)
        stages = []
        if plan is None:
            planned = terraform_plan_container(
                self._delivery_image, source, environment, aws, "<run-id>"
            )
            actions = ("exit-code: 0 nothing to apply (stop), 2 apply this plan",)
            stages.append(Stage("terraform-plan", planned, actions))
            plan = planned.file(terraform.plan_file_name(env))
        applied = terraform_apply_container(
            self._delivery_image, source, environment, aws, plan=plan, run_id="<run-id>"
        )
        name_check = f"check plan file name is {terraform.plan_file_name(env)}"
        return [*stages, Stage("terraform-apply", applied, (name_check, "exit-code"))]

    # --- cluster access and helm ---------------------------------------------------------

    @uncached
    async def kubeconfig(
        self,
        source: Source,
        env: EnvName,
        *,
        aws_access_key_id: AwsKeyId,
        aws_secret_access_key: AwsSecretKey,
        aws_session_token: AwsSessionToken = None,
    ) -> dagger.Secret:
        """A kubeconfig for the environment's EKS cluster, as a secret.

        Its bearer token is made as `aws eks get-token` makes it (a presigned STS
        GetCallerIdentity bound to the cluster) and is good for 14 minutes.
        """
        environment = await self._environment(source, env)
        credentials = await AwsSecrets(
            aws_access_key_id, aws_secret_access_key, aws_session_token
        ).plaintext()

        def make() -> str:
            return eks_token.cluster_kubeconfig(
                credentials,
                environment.cluster_name,
                environment.aws.region,
                namespace=environment.helm.namespace,
            )

        try:
            text = await anyio.to_thread.run_sync(make)
        except eks_token.EksAccessError as error:
            raise StageFailed(f"kubeconfig: {error}") from error
        return dag.set_secret(f"kubeconfig-{env}-{new_run_id()[:12]}", text)

    def _plan_kubeconfig(
        self,
        source: dagger.Directory,
        env: str,
        *,
        aws_access_key_id: dagger.Secret,
        aws_secret_access_key: dagger.Secret,
        aws_session_token: dagger.Secret | None = None,
    ) -> list[Stage]:
        environment = _plan_environment(env)
        aws = AwsSecrets(aws_access_key_id, aws_secret_access_key, aws_session_token)
        cluster, region = environment.cluster_name, environment.aws.region
        return [
            Stage(
                "kubeconfig",
                None,
                (
                    f"eks describe-cluster {cluster} (region {region})",
                    f"sts presign GetCallerIdentity, header x-k8s-aws-id: {cluster}",
                    f"set-secret kubeconfig-{env}-<run-id>",
                ),
                inputs=aws.named(),
            )
        ]

    @uncached
    async def helm_upgrade(
        self,
        source: Source,
        env: EnvName,
        *,
        image: Annotated[str, Doc("The image by digest: <repository>@sha256:... or sha256:...")],
        kubeconfig: Annotated[dagger.Secret, Doc("A kubeconfig for the cluster (kubeconfig)")],
        timeout: Timeout = "10m",
    ) -> str:
        """helm upgrade --install --atomic --wait with the environment's values and the image
        by digest, then helm test; returns the release status.

        For bootstrapping and ephemeral environments; the GitOps path is promote.
        """
        environment = await self._environment(source, env)
        upgraded = helm_upgrade_container(
            self._delivery_image,
            source,
            environment,
            reference=image,
            kubeconfig=kubeconfig,
            timeout=timeout,
            run_id=new_run_id(),
        )
        try:
            return str(kube.parse_release_status(await upgraded.stdout()))
        except dagger.ExecError as error:
            meaning = (
                "the upgrade failed and --atomic rolled the release back"
                if "upgrade" in error.command
                else "helm test failed: the release is up but does not serve"
            )
            raise _exec_failure("helm-upgrade", error, meaning) from error

    def _plan_helm_upgrade(
        self,
        source: dagger.Directory,
        env: str,
        *,
        image: str,
        kubeconfig: dagger.Secret,
        timeout: str = "10m",
    ) -> list[Stage]:
        reference = image if "@" in image or DIGEST.match(image) else PLACEHOLDER_DIGEST
        upgraded = helm_upgrade_container(
            self._delivery_image,
            source,
            _plan_environment(env),
            reference=reference,
            kubeconfig=kubeconfig,
            timeout=timeout,
            run_id="<run-id>",
        )
        return [Stage("helm-upgrade", upgraded, ("stdout: helm status -o json",))]

    # --- GitOps ----------------------------------------------------------------------------

    @uncached
    async def promote(
        self,
        source: Source,
        env: EnvName,
        *,
        image: Annotated[str, Doc("The image by digest: <repository>@sha256:... (publish's)")],
        source_revision: Annotated[str, Doc("The git commit the image was built from")],
        git_token: Annotated[dagger.Secret, Doc("A token that may push to the env's branch")],
        remote: Annotated[
            str, Doc("Git URL to push to; defaults to the environment's git.repository")
        ] = "",
    ) -> str:
        """Write the image digest into the environment's values file on its branch and push.

        Returns the commit the branch points at (the promotion, or the existing commit when
        the digest was already there).
        """
        environment = await self._environment(source, env)
        split_reference(image, environment)
        promoted = promote_container(
            self._delivery_image,
            source,
            environment,
            reference=image,
            source_revision=source_revision,
            git_token=git_token,
            remote=remote,
            run_id=new_run_id(),
        )
        try:
            result = json.loads(await promoted.stdout())
        except dagger.ExecError as error:
            raise _exec_failure("promote", error, "the promotion was not pushed") from error
        return str(result["commit"])

    def _plan_promote(
        self,
        source: dagger.Directory,
        env: str,
        *,
        image: str,
        source_revision: str,
        git_token: dagger.Secret,
        remote: str = "",
    ) -> list[Stage]:
        promoted = promote_container(
            self._delivery_image,
            source,
            _plan_environment(env),
            reference=image,
            source_revision=source_revision,
            git_token=git_token,
            remote=remote,
            run_id="<run-id>",
        )
        return [Stage("promote", promoted, ("stdout: the commit as JSON",))]

    @uncached
    async def argocd_sync(
        self,
        source: Source,
        env: EnvName,
        *,
        token: Annotated[dagger.Secret, Doc("Argo CD API token (sent as a Bearer token)")],
        revision: Annotated[
            str, Doc("The git commit the application must be synced at; empty: any")
        ] = "",
        timeout: Annotated[int, Doc("Seconds to wait for Synced and Healthy")] = 600,
        application: Annotated[
            str, Doc("The Argo CD Application; defaults to the environment's")
        ] = "",
    ) -> str:
        """Ask Argo CD to sync, then wait until Synced at the revision and Healthy.

        Fails at once with Argo CD's message when the sync fails or the app is Degraded.
        """
        environment = await self._environment(source, env)
        return await self._argocd(
            source,
            environment,
            token=token,
            applications=[application or environment.argocd.application],
            revision=revision,
            timeout=timeout,
        )

    async def _argocd(
        self,
        source: dagger.Directory,
        env: Environment,
        *,
        token: dagger.Secret,
        applications: list[str],
        revision: str,
        timeout: int,
    ) -> str:
        """Sync the applications one after the other (their order is their sync waves)."""
        lines = []
        for application in applications:
            synced = argocd_container(
                self._delivery_image,
                source,
                env,
                token=token,
                application=application,
                revision=revision,
                timeout=timeout,
                run_id=new_run_id(),
            )
            try:
                output = await synced.stdout()
            except dagger.ExecError as error:
                raise _exec_failure("argocd-sync", error, "Argo CD did not converge") from error
            state = json.loads(output.strip().splitlines()[-1])
            lines.append(
                f"{state['application']}: {state['sync_status']} at {state['revision']},"
                f" {state['health']}"
            )
        return "\n".join(lines)

    def _plan_argocd_sync(
        self,
        source: dagger.Directory,
        env: str,
        *,
        token: dagger.Secret,
        revision: str = "",
        timeout: int = 600,
        application: str = "",
    ) -> list[Stage]:
        environment = _plan_environment(env)
        synced = argocd_container(
            self._delivery_image,
            source,
            environment,
            token=token,
            application=application or environment.argocd.application,
            revision=revision,
            timeout=timeout,
            run_id="<run-id>",
        )
        return [Stage("argocd-sync", synced, ("stdout: the final state as JSON",))]

    # --- the application pipeline ---------------------------------------------------------

    @uncached
    async def deploy(
        self,
        source: Source,
        env: EnvName,
        *,
        revision: Annotated[str, Doc("The git commit being deployed (image tag and label)")],
        aws_access_key_id: AwsKeyId,
        aws_secret_access_key: AwsSecretKey,
        aws_session_token: AwsSessionToken = None,
        strategy: Annotated[
            str, Doc("gitops: promote and let Argo CD sync; helm: helm-upgrade directly")
        ] = "gitops",
        git_token: Annotated[
            dagger.Secret | None, Doc("Token that may push to the env's branch (gitops)")
        ] = None,
        argocd_token: Annotated[dagger.Secret | None, Doc("Argo CD API token (gitops)")] = None,
        timeout: Annotated[int, Doc("Seconds to wait for the rollout")] = 600,
    ) -> str:
        """The application pipeline: build, publish to ECR, promote (or helm upgrade),
        wait for Argo CD, then a smoke check (health, put, get, del) in the store."""
        environment = await self._environment(source, env)
        if strategy not in ("gitops", "helm"):
            raise StageFailed(f"deploy: strategy must be gitops or helm, not {strategy!r}")
        if strategy == "gitops" and (git_token is None or argocd_token is None):
            raise StageFailed("deploy: the gitops strategy needs --git-token and --argocd-token")
        pipeline = self._pipeline()
        reference = await pipeline.publish(
            pipeline.build(source, revision=revision),
            environment.ecr_repository,
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            aws_session_token=aws_session_token,
            tag=revision,
            region=environment.aws.region,
        )
        report = [f"published {reference}"]

        async def fresh_kubeconfig() -> dagger.Secret:
            # EKS tokens last 15 minutes: one per step that talks to the cluster.
            return await self.kubeconfig(
                source,
                env,
                aws_access_key_id=aws_access_key_id,
                aws_secret_access_key=aws_secret_access_key,
                aws_session_token=aws_session_token,
            )

        if strategy == "helm":
            status = await self.helm_upgrade(
                source,
                env,
                image=reference,
                kubeconfig=await fresh_kubeconfig(),
                timeout=f"{timeout}s",
            )
            report.append(f"helm: {status}")
        else:
            assert git_token is not None and argocd_token is not None
            commit = await self.promote(
                source, env, image=reference, source_revision=revision, git_token=git_token
            )
            report.append(f"promoted in {environment.branch} at {commit}")
            synced = await self.argocd_sync(
                source, env, token=argocd_token, revision=commit, timeout=timeout
            )
            report.append(f"argocd: {synced}")
        report.append(await self._smoke(environment, await fresh_kubeconfig(), timeout))
        return "\n".join(report)

    async def _smoke(self, env: Environment, kubeconfig: dagger.Secret, timeout: int) -> str:
        checked = smoke_container(
            self._delivery_image, env, kubeconfig, f"{timeout}s", new_run_id()
        )
        try:
            return (await checked.stdout()).strip().splitlines()[-1]
        except dagger.ExecError as error:
            raise _exec_failure("smoke", error, "the deployed store failed its check") from error

    def _plan_deploy(
        self,
        source: dagger.Directory,
        env: str,
        *,
        revision: str,
        aws_access_key_id: dagger.Secret,
        aws_secret_access_key: dagger.Secret,
        aws_session_token: dagger.Secret | None = None,
        strategy: str = "gitops",
        git_token: dagger.Secret | None = None,
        argocd_token: dagger.Secret | None = None,
        timeout: int = 600,
    ) -> list[Stage]:
        environment = _plan_environment(env)
        image = f"{environment.image_repository}@{PLACEHOLDER_DIGEST}"
        built = self._pipeline().build(source, revision=revision)
        plan_publish: Callable[..., list[Stage]] = getattr(self, "_plan_publish")  # noqa: B009
        stages = [
            Stage("build", built, ("sync",)),
            *plan_publish(
                built,
                environment.ecr_repository,
                aws_access_key_id=aws_access_key_id,
                aws_secret_access_key=aws_secret_access_key,
                aws_session_token=aws_session_token,
                tag=revision,
                region=environment.aws.region,
            ),
        ]
        access = self._plan_kubeconfig(
            source,
            env,
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            aws_session_token=aws_session_token,
        )
        kubeconfig = dag.secret("<kubeconfig>")
        if strategy == "helm":
            stages += access
            stages += self._plan_helm_upgrade(
                source, env, image=image, kubeconfig=kubeconfig, timeout=f"{timeout}s"
            )
        else:
            stages += self._plan_promote(
                source,
                env,
                image=image,
                source_revision=revision,
                git_token=git_token or dag.secret("<git-token>"),
            )
            stages += self._plan_argocd_sync(
                source,
                env,
                token=argocd_token or dag.secret("<argocd-token>"),
                revision="<promotion commit>",
                timeout=timeout,
            )
        smoke = smoke_container(
            self._delivery_image, environment, kubeconfig, f"{timeout}s", "<run-id>"
        )
        return [*stages, *access, Stage("smoke", smoke, ("stdout",))]

    @uncached
    async def rollback(
        self,
        source: Source,
        env: EnvName,
        *,
        to: Annotated[
            str,
            Doc(
                "previous: undo the last promotion (gitops) or go to the previous release"
                " (helm); or a digest sha256:... to promote (gitops); or a helm revision"
            ),
        ] = "previous",
        strategy: Annotated[str, Doc("gitops (git revert + Argo CD) or helm (helm rollback)")] = (
            "gitops"
        ),
        git_token: Annotated[dagger.Secret | None, Doc("Token to push the revert (gitops)")] = (
            None
        ),
        argocd_token: Annotated[dagger.Secret | None, Doc("Argo CD API token (gitops)")] = None,
        aws_access_key_id: Annotated[
            dagger.Secret | None, Doc("AWS access key id (helm strategy)")
        ] = None,
        aws_secret_access_key: Annotated[
            dagger.Secret | None, Doc("AWS secret access key (helm strategy)")
        ] = None,
        aws_session_token: AwsSessionToken = None,
        timeout: Annotated[int, Doc("Seconds to wait for health afterwards")] = 600,
    ) -> str:
        """Roll the environment back, in git (a revert of the promotion, then Argo CD sync)
        or with helm rollback, and wait until it is healthy again."""
        environment = await self._environment(source, env)
        if strategy == "helm":
            if aws_access_key_id is None or aws_secret_access_key is None:
                raise StageFailed("rollback: the helm strategy needs the AWS credentials")
            kubeconfig = await self.kubeconfig(
                source,
                env,
                aws_access_key_id=aws_access_key_id,
                aws_secret_access_key=aws_secret_access_key,
                aws_session_token=aws_session_token,
            )
            return await self._helm_rollback(source, environment, to, kubeconfig, timeout)
        if git_token is None or argocd_token is None:
            raise StageFailed("rollback: the gitops strategy needs --git-token and --argocd-token")
        if to == "previous":
            reverted = rollback_container(
                self._delivery_image,
                source,
                environment,
                git_token=git_token,
                remote="",
                run_id=new_run_id(),
            )
            try:
                commit = str(json.loads(await reverted.stdout())["commit"])
            except dagger.ExecError as error:
                raise _exec_failure("rollback", error, "nothing was reverted") from error
        else:
            commit = await self.promote(
                source, env, image=to, source_revision="rollback", git_token=git_token
            )
        synced = await self.argocd_sync(
            source, env, token=argocd_token, revision=commit, timeout=timeout
        )
        return f"rolled back {env} at {commit}\nargocd: {synced}"

    async def _helm_rollback(
        self,
        source: dagger.Directory,
        env: Environment,
        to: str,
        kubeconfig: dagger.Secret,
        timeout: int,
    ) -> str:
        rolled = helm_rollback_container(
            self._delivery_image,
            source,
            env,
            to=to,
            kubeconfig=kubeconfig,
            timeout=timeout,
            run_id=new_run_id(),
        )
        try:
            return str(kube.parse_release_status(await rolled.stdout()))
        except dagger.ExecError as error:
            raise _exec_failure("rollback", error, "helm rollback did not complete") from error

    def _plan_rollback(
        self,
        source: dagger.Directory,
        env: str,
        *,
        to: str = "previous",
        strategy: str = "gitops",
        git_token: dagger.Secret | None = None,
        argocd_token: dagger.Secret | None = None,
        aws_access_key_id: dagger.Secret | None = None,
        aws_secret_access_key: dagger.Secret | None = None,
        aws_session_token: dagger.Secret | None = None,
        timeout: int = 600,
    ) -> list[Stage]:
        environment = _plan_environment(env)
        if strategy == "helm":
            rolled = helm_rollback_container(
                self._delivery_image,
                source,
                environment,
                to=to,
                kubeconfig=dag.secret("<kubeconfig>"),
                timeout=timeout,
                run_id="<run-id>",
            )
            return [Stage("helm-rollback", rolled, ("stdout: helm status -o json",))]
        token = git_token or dag.secret("<git-token>")
        reverted = rollback_container(
            self._delivery_image, source, environment, git_token=token, remote="", run_id="<run-id>"
        )
        return [
            Stage("rollback", reverted, ("stdout: the revert commit as JSON",)),
            *self._plan_argocd_sync(
                source,
                env,
                token=argocd_token or dag.secret("<argocd-token>"),
                revision="<revert commit>",
                timeout=timeout,
            ),
        ]

    # --- monitoring and change detection --------------------------------------------------

    @uncached
    async def deploy_monitoring(
        self,
        source: Source,
        env: EnvName,
        *,
        strategy: Annotated[
            str, Doc("argocd: sync the monitoring Applications; helm: install the charts")
        ] = "argocd",
        argocd_token: Annotated[dagger.Secret | None, Doc("Argo CD API token (argocd)")] = None,
        kubeconfig: Annotated[
            dagger.Secret | None,
            Doc("A kubeconfig for the cluster (helm); made from the AWS credentials if not given"),
        ] = None,
        aws_access_key_id: Annotated[
            dagger.Secret | None, Doc("AWS access key id (helm, without --kubeconfig)")
        ] = None,
        aws_secret_access_key: Annotated[
            dagger.Secret | None, Doc("AWS secret access key (helm, without --kubeconfig)")
        ] = None,
        aws_session_token: AwsSessionToken = None,
        timeout: Annotated[int, Doc("Seconds to wait for each part")] = 900,
    ) -> str:
        """The monitoring pipeline: Prometheus, Grafana, the collector, Jaeger and the
        store's alerts and dashboard, synced by Argo CD in wave order or installed by helm."""
        environment = await self._environment(source, env)
        if strategy == "argocd":
            if argocd_token is None:
                raise StageFailed("deploy-monitoring: the argocd strategy needs --argocd-token")
            applications = list(kube.MONITORING_APPLICATIONS)
            return await self._argocd(
                source,
                environment,
                token=argocd_token,
                applications=applications,
                revision="",
                timeout=timeout,
            )
        if kubeconfig is None:
            if aws_access_key_id is None or aws_secret_access_key is None:
                raise StageFailed(
                    "deploy-monitoring: the helm strategy needs --kubeconfig or AWS credentials"
                )
            kubeconfig = await self.kubeconfig(
                source,
                env,
                aws_access_key_id=aws_access_key_id,
                aws_secret_access_key=aws_secret_access_key,
                aws_session_token=aws_session_token,
            )
        charts = monitoring_charts(await source.file(ARGOCD_VALUES).contents())
        run_id = new_run_id()
        try:
            await monitoring_charts_container(
                self._delivery_image,
                source,
                charts=charts,
                kubeconfig=kubeconfig,
                timeout=timeout,
                run_id=run_id,
            ).sync()
            applied = await monitoring_manifests_container(
                self._delivery_image, source, kubeconfig, run_id
            ).stdout()
        except dagger.ExecError as error:
            raise _exec_failure("deploy-monitoring", error, "monitoring not installed") from error
        names = ", ".join(f"{c.release} {c.version}" for c in charts)
        return f"installed {names}\n{applied.strip()}"

    def _plan_deploy_monitoring(
        self,
        source: dagger.Directory,
        env: str,
        *,
        strategy: str = "argocd",
        argocd_token: dagger.Secret | None = None,
        kubeconfig: dagger.Secret | None = None,
        aws_access_key_id: dagger.Secret | None = None,
        aws_secret_access_key: dagger.Secret | None = None,
        aws_session_token: dagger.Secret | None = None,
        timeout: int = 900,
    ) -> list[Stage]:
        environment = _plan_environment(env)
        if strategy == "argocd":
            token = argocd_token or dag.secret("<argocd-token>")
            return [
                Stage(
                    f"argocd-sync {application}",
                    argocd_container(
                        self._delivery_image,
                        source,
                        environment,
                        token=token,
                        application=application,
                        revision="",
                        timeout=timeout,
                        run_id="<run-id>",
                    ),
                    ("stdout",),
                )
                for application in kube.MONITORING_APPLICATIONS
            ]
        from kvstore_ci.dryrun import context_root  # noqa: PLC0415 - plans only

        values = (context_root(Path.cwd()) / ARGOCD_VALUES).read_text(encoding="utf-8")
        access: list[Stage] = []
        if kubeconfig is None:
            access = self._plan_kubeconfig(
                source,
                env,
                aws_access_key_id=aws_access_key_id or dag.secret("<aws-access-key-id>"),
                aws_secret_access_key=aws_secret_access_key
                or dag.secret("<aws-secret-access-key>"),
                aws_session_token=aws_session_token,
            )
        config = kubeconfig or dag.secret("<kubeconfig>")
        charts = monitoring_charts_container(
            self._delivery_image,
            source,
            charts=monitoring_charts(values),
            kubeconfig=config,
            timeout=timeout,
            run_id="<run-id>",
        )
        manifests = monitoring_manifests_container(self._delivery_image, source, config, "<run-id>")
        return [
            *access,
            Stage("monitoring-charts", charts, ("sync",)),
            Stage("monitoring-manifests", manifests, ("stdout",)),
        ]

    @function
    async def affected(
        self,
        repository: Repository,
        base: Annotated[str, Doc("The revision before the change (e.g. the PR's base)")],
        head: Annotated[str, Doc("The revision after the change")] = "HEAD",
    ) -> str:
        """Which pipelines (infrastructure, application, monitoring) a change triggers, as
        JSON {pipeline: bool}. Same as `python -m kvstore_ci affected`, which needs no engine."""
        checked = affected_container(self._delivery_image, repository, base, head)
        try:
            return (await checked.stdout()).strip()
        except dagger.ExecError as error:
            raise _exec_failure("affected", error, "cannot compare the revisions") from error

    def _plan_affected(
        self, repository: dagger.Directory, base: str, head: str = "HEAD"
    ) -> list[Stage]:
        checked = affected_container(self._delivery_image, repository, base, head)
        return [Stage("affected", checked, ("stdout: {pipeline: bool} as JSON",))]


ARGOCD_VALUES = "deploy/kubernetes/argocd/values.yaml"


@dataclass(frozen=True)
class MonitoringChart:
    """One upstream monitoring chart at its pinned version."""

    release: str
    repo_url: str
    chart: str
    version: str


def monitoring_charts(argocd_values: str) -> list[MonitoringChart]:
    """The pinned monitoring charts, read from the Argo CD values (one place for versions)."""
    data = YAML(typ="safe", pure=True).load(argocd_values)
    pins = data["monitoring"]["charts"]
    return [
        MonitoringChart(
            release=release,
            repo_url=str(pins[key]["repoURL"]),
            chart=str(pins[key]["chart"]),
            version=str(pins[key]["version"]),
        )
        for release, (key, _values) in kube.MONITORING_CHARTS.items()
    ]


def monitoring_charts_container(
    image: Image,
    source: dagger.Directory,
    *,
    charts: list[MonitoringChart],
    kubeconfig: dagger.Secret,
    timeout: int,
    run_id: str,
) -> dagger.Container:
    """helm upgrade --install --atomic of each pinned chart, in order, with our values."""
    container = helm_container(image, source, kubeconfig, run_id)
    for chart in charts:
        container = container.with_exec(
            kube.monitoring_upgrade_args(
                chart.release, chart.repo_url, chart.chart, chart.version, f"{timeout}s"
            )
        )
    return container


def monitoring_manifests_container(
    image: Image, source: dagger.Directory, kubeconfig: dagger.Secret, run_id: str
) -> dagger.Container:
    """The store's alerts and dashboard (plain manifests), applied server-side."""
    return (
        kubectl_container(image, kubeconfig, run_id)
        .with_directory("/manifests", source.directory(kube.MONITORING_MANIFESTS))
        .with_exec(
            [
                "kubectl",
                "apply",
                "--server-side",
                "--namespace",
                kube.MONITORING_NAMESPACE,
                "--filename",
                "/manifests",
            ]
        )
    )


def helm_rollback_container(
    image: Image,
    source: dagger.Directory,
    env: Environment,
    *,
    to: str,
    kubeconfig: dagger.Secret,
    timeout: int,
    run_id: str,
) -> dagger.Container:
    """helm rollback to the previous (``to="previous"``) or a given revision, then status."""
    if to != "previous" and not to.isdigit():
        raise StageFailed(f"rollback: with helm, --to is 'previous' or a revision number: {to!r}")
    revision = 0 if to == "previous" else int(to)
    return (
        helm_container(image, source, kubeconfig, run_id)
        .with_exec(kube.helm_rollback_args(env, revision, f"{timeout}s"))
        .with_exec(kube.helm_status_args(env))
    )
