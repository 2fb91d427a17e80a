"""What every family of functions shares: images, the executor, environments, arguments.

:class:`Functions` is the base of every family class; the module object ``KvstoreCi``
inherits them all. It gives a function the three things it may use besides lazy objects:

- ``self._image(reference)`` / ``self._reference(reference)``: the one way to get an image
  (every reference comes from :mod:`kvstore_ci.images` and goes through the mirror);
- ``self._run``: the :class:`~kvstore_ci.executor.Executor` every awaited step goes through;
- ``await self._environment(source, env, stage)``: an environment file, read and validated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import dagger
import dagger.mod
from dagger import DefaultPath, Doc, Ignore, dag

from kvstore_ci import eks_token, images
from kvstore_ci.environments import (
    ENVIRONMENTS,
    Environment,
    EnvironmentConfigError,
    environment_path,
    parse,
)
from kvstore_ci.executor import ENGINE, Executor
from kvstore_ci.reports import StageFailed
from kvstore_ci.stages import PIP_CACHE, SOURCE_IGNORE

__all__ = [
    "RUN_ID_VARIABLE",
    "AwsKeyId",
    "AwsSecretKey",
    "AwsSecrets",
    "AwsSessionToken",
    "EnvName",
    "Functions",
    "Image",
    "Repository",
    "Source",
    "check",
    "function",
    "runner",
    "uncached",
]

F = TypeVar("F", bound=Callable[..., Any])
Image = Callable[[str], dagger.Container]

RUN_ID_VARIABLE = "KVSTORE_CI_RUN_ID"
"""Set to a fresh value before every command with side effects: a cache buster."""

RUNNER_DIR = "/opt/kvstore-ci"

# The repository checkout every source-reading function takes (`dagger call` loads it from
# the module's git repository unless --source is given).
Source = Annotated[
    dagger.Directory,
    DefaultPath("/"),
    Ignore(SOURCE_IGNORE),
    Doc("The repository checkout (defaults to the repository holding this module)."),
]
# `affected` also needs the git history.
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


def function(func: F) -> F:
    """The SDK's ``@function``, typed: ``func`` becomes a module function, cached as usual.

    The SDK's decorator hides a function's own type from the functions that call it
    (``ci`` awaits ``lint``, ``deploy`` awaits ``build``); these wrappers keep it.
    """
    register: Callable[[F], F] = dagger.mod.function  # type: ignore[assignment]
    return register(func)


def uncached(func: F) -> F:
    """Like :func:`function`, for functions that change the world (pushes, deploys): Dagger
    never serves them from its cache.

    The SDK's ``function`` overloads do not declare ``cache`` (the implementation accepts
    it), hence the ignore.
    """
    register: Callable[[F], F] = dagger.mod.function(cache="never")  # type: ignore[call-overload]
    return register(func)


def check(func: F) -> F:
    """The SDK's ``@check``, typed: ``dagger check`` runs ``func`` (put it under ``@function``).

    A check needs no required argument; it passes when it returns (a returned container or
    file is synced) and fails with its error.
    """
    register: Callable[[F], F] = dagger.mod.check  # type: ignore[assignment]
    return register(func)


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
        """The secrets by argument name, for an API call through the executor."""
        found = {
            "aws-access-key-id": self.access_key_id,
            "aws-secret-access-key": self.secret_access_key,
        }
        if self.session_token is not None:
            found["aws-session-token"] = self.session_token
        return found

    @staticmethod
    def credentials(plain: Mapping[str, str]) -> eks_token.AwsCredentials:
        """The plaintexts of :meth:`named`, for the module's own API calls."""
        return eks_token.AwsCredentials(
            plain["aws-access-key-id"],
            plain["aws-secret-access-key"],
            plain.get("aws-session-token"),
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


class Functions:
    """The base of every family of functions (see the module docstring)."""

    if TYPE_CHECKING:
        mirror: str  # a field of the module object

    # The executor of every awaited step; the plan sets a recorder on its instance.
    _executor: Executor = ENGINE

    @property
    def _run(self) -> Executor:
        return self._executor

    def _reference(self, reference: str) -> str:
        """A pinned image reference, through the mirror when one is set."""
        return images.with_mirror(reference, self.mirror)

    def _image(self, reference: str) -> dagger.Container:
        """A container from a pinned image, through the mirror when one is set."""
        return dag.container().from_(self._reference(reference))

    async def _environment(self, source: dagger.Directory, name: str, stage: str) -> Environment:
        """The environment file ``name`` read from ``source`` and validated."""
        path = environment_path(name)
        try:
            if name not in ENVIRONMENTS:
                raise EnvironmentConfigError(
                    f"{path}: unknown environment {name!r}; known: {', '.join(ENVIRONMENTS)}"
                )
            text = await self._run.contents(stage, source.file(path), note="the environment")
            return parse(text, path, expected_name=name)
        except EnvironmentConfigError as error:
            raise StageFailed(
                f"{stage}: {error}\n  what to do: fix the named field of {path}"
            ) from None
