"""The deployment environments, loaded and validated in one place.

Each environment is one declarative file, ``deploy/environments/<name>.yaml``, holding what
the delivery stages need to reach it: the AWS account and region, the EKS cluster, the ECR
repository, the Terraform root and its S3 backend, the Helm release, the Argo CD
application and the git branch that deploys it. Stages never hard-code any of these; they
call :func:`load` (from a checkout) or :func:`parse` (from text read out of a Dagger
``Directory``) and get a frozen :class:`Environment`.

A wrong or missing field raises :class:`EnvironmentConfigError` whose message names the file
and the dotted field, e.g. ``deploy/environments/staging.yaml: aws.region: missing``, so the
person who broke the file can fix it without reading this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

__all__ = [
    "ENVIRONMENTS",
    "ENVIRONMENTS_DIR",
    "ArgoCd",
    "Aws",
    "Environment",
    "EnvironmentConfigError",
    "Helm",
    "Terraform",
    "TerraformBackend",
    "environment_path",
    "load",
    "parse",
]

ENVIRONMENTS_DIR = "deploy/environments"
"""Where the environment files live, relative to the repository root."""

ENVIRONMENTS = ("staging", "production")
"""The environments the pipeline knows; each has a file in :data:`ENVIRONMENTS_DIR`."""

_ACCOUNT_ID = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
# DNS-1123 label: Kubernetes namespaces, Helm releases, Argo CD applications, EKS names.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_ECR_REPOSITORY = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_BRANCH = re.compile(r"^[A-Za-z0-9._/-]+$")
_URL = re.compile(r"^https?://[^\s/]+(/[^\s]*)?$")
_RELATIVE_PATH = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


class EnvironmentConfigError(ValueError):
    """An environment file is missing, unreadable, or has a wrong or missing field."""


@dataclass(frozen=True)
class Aws:
    """The AWS account and region the environment lives in."""

    account_id: str
    region: str
    endpoint: str = ""
    """One URL for every AWS API the pipeline calls (an emulator, a proxy); empty: AWS's own."""


@dataclass(frozen=True)
class TerraformBackend:
    """The S3 backend of the environment's Terraform state (``-backend-config`` values)."""

    bucket: str
    key: str
    region: str


@dataclass(frozen=True)
class Terraform:
    """The environment's Terraform root module and where its state lives."""

    root: str
    backend: TerraformBackend


@dataclass(frozen=True)
class Helm:
    """The Helm release that runs the store in the environment's cluster."""

    release: str
    namespace: str


@dataclass(frozen=True)
class ArgoCd:
    """The Argo CD API server and the Application that syncs the environment."""

    server: str
    application: str


@dataclass(frozen=True)
class Environment:
    """Everything the delivery stages need to know about one environment."""

    name: str
    repository: str
    branch: str
    aws: Aws
    cluster_name: str
    ecr_repository: str
    terraform: Terraform
    helm: Helm
    argocd: ArgoCd

    @property
    def registry(self) -> str:
        """The ECR registry host of the environment's account and region."""
        return f"{self.aws.account_id}.dkr.ecr.{self.aws.region}.amazonaws.com"

    @property
    def image_repository(self) -> str:
        """The full image repository (registry host and repository name)."""
        return f"{self.registry}/{self.ecr_repository}"

    @property
    def values_file(self) -> str:
        """The Helm values file whose ``image.digest`` says what the environment runs."""
        return f"deploy/kubernetes/environments/{self.name}/values.yaml"


def environment_path(name: str) -> str:
    """The file of environment ``name``, relative to the repository root."""
    return f"{ENVIRONMENTS_DIR}/{name}.yaml"


def load(root: Path, name: str) -> Environment:
    """Load and validate environment ``name`` from the checkout at ``root``."""
    relative = environment_path(name)
    if name not in ENVIRONMENTS:
        raise EnvironmentConfigError(
            f"{relative}: unknown environment {name!r}; known: {', '.join(ENVIRONMENTS)}"
        )
    path = root / relative
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise EnvironmentConfigError(f"{relative}: cannot read: {error.strerror}") from error
    return parse(text, relative, expected_name=name)


def parse(text: str, source: str, *, expected_name: str | None = None) -> Environment:
    """Validate the YAML ``text`` of an environment file; ``source`` names it in errors."""
    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as error:
        raise EnvironmentConfigError(f"{source}: not valid YAML: {error}") from error
    fields = _Fields(source, data, "")
    name = fields.string("name", _DNS_LABEL, "a DNS label such as 'staging'")
    if expected_name is not None and name != expected_name:
        raise EnvironmentConfigError(
            f"{source}: name: is {name!r} but the file is for {expected_name!r}"
        )
    aws = fields.section("aws")
    eks = fields.section("eks")
    ecr = fields.section("ecr")
    terraform = fields.section("terraform")
    backend = terraform.section("backend")
    helm = fields.section("helm")
    argocd = fields.section("argocd")
    git = fields.section("git")
    env = Environment(
        name=name,
        repository=git.string("repository", _URL, "an http(s) URL of the git repository"),
        branch=git.string("branch", _BRANCH, "a git branch name"),
        aws=Aws(
            account_id=aws.string("account_id", _ACCOUNT_ID, "12 digits, quoted"),
            region=aws.string("region", _REGION, "an AWS region such as 'eu-west-1'"),
            endpoint=aws.optional_string("endpoint", _URL, "an http(s) URL").rstrip("/"),
        ),
        cluster_name=eks.string("cluster_name", _DNS_LABEL, "an EKS cluster name"),
        ecr_repository=ecr.string("repository", _ECR_REPOSITORY, "an ECR repository name"),
        terraform=Terraform(
            root=terraform.string("root", _RELATIVE_PATH, "a path relative to the repository"),
            backend=TerraformBackend(
                bucket=backend.string("bucket", _BUCKET, "an S3 bucket name"),
                key=backend.string("key", _RELATIVE_PATH, "an S3 object key"),
                region=backend.string("region", _REGION, "an AWS region"),
            ),
        ),
        helm=Helm(
            release=helm.string("release", _DNS_LABEL, "a Helm release name"),
            namespace=helm.string("namespace", _DNS_LABEL, "a Kubernetes namespace"),
        ),
        argocd=ArgoCd(
            server=argocd.string("server", _URL, "an http(s) URL").rstrip("/"),
            application=argocd.string("application", _DNS_LABEL, "an Argo CD Application"),
        ),
    )
    for section in (fields, aws, eks, ecr, terraform, backend, helm, argocd, git):
        section.reject_unknown()
    return env


class _Fields:
    """One mapping of an environment file, read field by field with precise errors."""

    def __init__(self, source: str, data: object, prefix: str) -> None:
        self._source = source
        self._prefix = prefix
        if not isinstance(data, dict):
            where = prefix.rstrip(".") or "the file"
            raise EnvironmentConfigError(f"{source}: {where}: must be a mapping, got {_kind(data)}")
        self._data: dict[Any, Any] = data
        self._read: set[str] = set()

    def _error(self, key: str, problem: str) -> EnvironmentConfigError:
        return EnvironmentConfigError(f"{self._source}: {self._prefix}{key}: {problem}")

    def section(self, key: str) -> _Fields:
        """The nested mapping under ``key``."""
        self._read.add(key)
        if key not in self._data:
            raise self._error(key, "missing")
        return _Fields(self._source, self._data[key], f"{self._prefix}{key}.")

    def string(self, key: str, pattern: re.Pattern[str], expected: str) -> str:
        """The string under ``key``, which must match ``pattern`` (``expected`` says how)."""
        self._read.add(key)
        if key not in self._data:
            raise self._error(key, "missing")
        value = self._data[key]
        if not isinstance(value, str):
            raise self._error(key, f"must be a string ({expected}), got {_kind(value)}")
        if not pattern.match(value):
            raise self._error(key, f"{value!r} is not {expected}")
        return value

    def optional_string(self, key: str, pattern: re.Pattern[str], expected: str) -> str:
        """Like :meth:`string`, but an absent ``key`` is the empty string."""
        if key not in self._data:
            self._read.add(key)
            return ""
        return self.string(key, pattern, expected)

    def reject_unknown(self) -> None:
        """Fail on keys nobody reads: a typo must not silently fall back to nothing."""
        unknown = sorted(str(key) for key in self._data if key not in self._read)
        if unknown:
            raise self._error(unknown[0], "unknown field")


def _kind(value: object) -> str:
    """How a YAML value is described in errors."""
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"
