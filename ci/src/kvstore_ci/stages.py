"""The containers of the lint, test, build and publish stages, built lazily.

Nothing here runs anything: each function returns lazy Dagger objects that
:mod:`kvstore_ci.main` awaits and that ``python -m kvstore_ci plan`` prints. Images come
from a caller-supplied ``image`` function so the module's ``mirror`` applies everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio
import dagger
from dagger import dag

from kvstore_ci import images
from kvstore_ci.executor import ENGINE, Executor
from kvstore_ci.reports import (
    LINT_ADVICE,
    CheckResult,
    CommandFailed,
    StageFailed,
    failing_tests,
    failure_message,
    summary,
)

__all__ = [
    "CHART_PATH",
    "DEFAULT_TEST_SELECTION",
    "ENVIRONMENTS",
    "JUNIT_REPORT",
    "KUBERNETES_DIR",
    "OCI_LABEL",
    "SOURCE_IGNORE",
    "TERRAFORM_DIR",
    "Check",
    "image_build",
    "image_labels",
    "lint_checks",
    "python_dev",
    "revision_tag",
    "run_checks",
    "run_tests",
    "test_run",
    "with_auth",
]

Image = Callable[[str], dagger.Container]

# Paths inside the stage containers and inside the repository.
SRC = "/src"
PIP_CACHE = "/root/.cache/pip"
UV_CACHE = "/root/.cache/uv"
VENV = "/opt/kvstore"  # the project and its dev tools, as .venv on a developer machine
CHECKOV_VENV = "/opt/checkov"
MYPY_CACHE = "/cache/mypy"
# What runs outside the stage (scripts/test): the tests that need a Docker or a Dagger
# engine, the network partitions, which need the host's cgroup v2 hierarchy (a container
# has none to write), the Kubernetes tests, which need the kube-apiserver that
# scripts/kubernetes builds from source (a build far too long for every stage run), and
# the peer suites, which need Go, namespaces and the clients scripts/peers caches.
DEFAULT_TEST_SELECTION = (
    "not docker and not engine and not netfault and not kubernetes and not peers"
)
# Debian packages of the stage's tool box: scripts/tools.env STAGE_DEBIAN_PACKAGES.
STAGE_PACKAGES = (
    "prometheus",
    "etcd-client",
    "etcd-server",
    "iproute2",
    "iptables",
    "git",
    "ca-certificates",
    "gcc",
    "libc6-dev",
    "openssl",
)
# Versions shared with scripts/tools.env (tests/foundation/test_pins.py keeps them equal).
UV_VERSION = "0.13.9"
CHECKOV_VERSION = "3.3.30"
JUNIT_REPORT = "/tmp/test-results/junit.xml"  # noqa: S108 - a path inside the test container
TERRAFORM_DIR = "deploy/terraform"
KUBERNETES_DIR = "deploy/kubernetes"
CHART_PATH = "charts/kvstore"  # inside KUBERNETES_DIR
ENVIRONMENTS = ("staging", "production")  # KUBERNETES_DIR/environments/<env>/values.yaml
# What ruff and mypy check, in the stage and on a developer machine alike.
PYTHON_PATHS = ("kvstore", "ci/src", "tests")
YAML_PATHS = (".github", "deploy/kubernetes")

# Never part of a stage's input: local environments, caches and build output.
SOURCE_IGNORE = [
    ".git",
    ".venv",
    ".tools",
    "**/__pycache__",
    "**/.pytest_cache",
    "**/.mypy_cache",
    "**/.ruff_cache",
    "**/.terraform",
    "ci/sdk",
    "ci/.venv",
    "test-results",
    "dist",
    "build",
]

# The OCI annotation keys the image carries (opencontainers image-spec, annotations.md).
OCI_LABEL = "org.opencontainers.image."


@dataclass(frozen=True)
class Check:
    """One lint tool: its name, the exact command, and the container that runs it."""

    name: str
    command: tuple[str, ...]
    container: dagger.Container


def tool_binaries(image: Image) -> dagger.Directory:
    """The helm, terraform and actionlint binaries of their pinned images, in one directory.

    Each image keeps its binary somewhere else (``/usr/bin``, ``/bin``, ``/usr/local/bin``),
    so the shell of each image finds it on its own PATH. They are static Go binaries and run
    in the Debian-based Python image unchanged.
    """
    tools = dag.directory()
    for name, reference in (
        ("helm", images.HELM),
        ("terraform", images.TERRAFORM),
        ("actionlint", images.ACTIONLINT),
    ):
        copied = (
            image(reference)
            .with_entrypoint([])
            .with_exec(["sh", "-c", f'mkdir -p /out && cp "$(command -v {name})" /out/{name}'])
        )
        tools = tools.with_file(name, copied.file(f"/out/{name}"))
    return tools


def _venv(path: str) -> list[str]:
    """A venv at ``path`` on the image's ``python``, by its path: uv's lookup by name skips
    an interpreter that is itself in a venv, as some images' ``python`` is."""
    return ["sh", "-c", f'uv venv --quiet --python "$(command -v python)" {path}']


def toolbox(image: Image) -> dagger.Container:
    """The pinned Python image with every tool the test suite calls, as scripts/test-env has.

    Debian's packages come from the image's own archive (their downloads kept in a cache
    volume), the Go-written tools from their pinned images, checkov from its own venv (its
    pins conflict with the project's, as on a developer machine). uv makes the venvs, so
    the image's Python needs neither ``ensurepip`` nor to be a venv itself.
    """
    return (
        image(images.PYTHON)
        .with_mounted_cache("/var/cache/apt/archives", dag.cache_volume("kvstore-apt-archives"))
        .with_env_variable("DEBIAN_FRONTEND", "noninteractive")
        .with_exec(["rm", "-f", "/etc/apt/apt.conf.d/docker-clean"])
        .with_exec(["apt-get", "update", "-qq"])
        .with_exec(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *STAGE_PACKAGES])
        .with_directory("/usr/local/bin", tool_binaries(image))
        .with_mounted_cache(PIP_CACHE, dag.cache_volume("kvstore-pip"))
        .with_mounted_cache(UV_CACHE, dag.cache_volume("kvstore-uv"))
        .with_env_variable("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .with_env_variable("PIP_ROOT_USER_ACTION", "ignore")
        .with_env_variable("UV_LINK_MODE", "copy")
        # The platform's certificate store, as pip uses it: a registry proxy with its own
        # CA (installed into the image, as the engine does with its custom CAs) works too.
        .with_env_variable("UV_SYSTEM_CERTS", "1")
        .with_exec(["pip", "install", "--quiet", f"uv=={UV_VERSION}"])
        .with_exec(_venv(CHECKOV_VENV))
        .with_exec(
            [
                *("uv", "pip", "install", "--quiet", "--python", f"{CHECKOV_VENV}/bin/python"),
                f"checkov=={CHECKOV_VERSION}",
            ]
        )
        .with_exec(["ln", "-sf", f"{CHECKOV_VENV}/bin/checkov", "/usr/local/bin/checkov"])
    )


def python_dev(image: Image, source: dagger.Directory) -> dagger.Container:
    """The tool box with the project and its dev tools in a venv, exactly as scripts/setup.

    Same extras, same constraints.txt, dagger-io from constraints (not the vendored SDK),
    so the stage checks what a developer's ``.venv`` checks. The dependencies are installed
    from the three files that name them before the source arrives, so a commit that changes
    only code reuses that layer; uv's cache is a cache volume.
    """
    install = ["uv", "pip", "install", "--quiet", "--no-sources"]
    manifests = ("pyproject.toml", "ci/pyproject.toml", "constraints.txt")
    dependencies = (
        toolbox(image)
        .with_exec(_venv(VENV))
        .with_env_variable("VIRTUAL_ENV", VENV)
        .with_env_variable("PATH", f"{VENV}/bin:$PATH", expand=True)
    )
    for name in manifests:
        dependencies = dependencies.with_file(f"{SRC}/{name}", source.file(name))
    dependencies = dependencies.with_workdir(SRC).with_exec(
        [
            *install,
            "--constraint",
            "constraints.txt",
            "--requirements",
            "pyproject.toml",
            "--extra",
            "dev",
            "--extra",
            "bench",
            "--requirements",
            "ci/pyproject.toml",
        ]
    )
    return dependencies.with_directory(SRC, source).with_exec(
        [*install, "--no-deps", "--editable", ".", "--editable", "./ci"]
    )


def _check(container: dagger.Container, name: str, *command: str) -> Check:
    ran = container.with_exec(list(command), expect=dagger.ReturnType.ANY)
    return Check(name=name, command=command, container=ran)


def lint_checks(image: Image, source: dagger.Directory) -> list[Check]:
    """Every lint tool, each in its pinned container, none stopping the others."""
    dev = python_dev(image, source)
    typed = dev.with_mounted_cache(MYPY_CACHE, dag.cache_volume("kvstore-mypy"))
    terraform = image(images.TERRAFORM).with_directory(SRC, source.directory(TERRAFORM_DIR))
    # The chart requires an image digest, which only an environment's values give.
    helm = image(images.HELM).with_directory(SRC, source.directory(KUBERNETES_DIR))
    # actionlint finds the workflows from the repository root, which it recognises by .git.
    actionlint = (
        image(images.ACTIONLINT)
        .with_directory(f"{SRC}/.github", source.directory(".github"))
        .with_directory(f"{SRC}/.git", dag.directory())
    )
    return [
        _check(dev, "ruff-check", "ruff", "check", "--no-cache", *PYTHON_PATHS),
        _check(dev, "ruff-format", "ruff", "format", "--no-cache", "--check", *PYTHON_PATHS),
        _check(typed, "mypy", "mypy", "--strict", "--cache-dir", MYPY_CACHE, *PYTHON_PATHS),
        _check(dev, "yamllint", "yamllint", "--strict", *YAML_PATHS),
        _check(
            terraform.with_workdir(SRC),
            "terraform-fmt",
            "terraform",
            "fmt",
            "-check",
            "-recursive",
            "-diff",
            ".",
        ),
        *(
            _check(
                helm.with_workdir(SRC),
                f"helm-lint-{env}",
                "helm",
                "lint",
                "--strict",
                CHART_PATH,
                "--values",
                f"environments/{env}/values.yaml",
            )
            for env in ENVIRONMENTS
        ),
        _check(actionlint.with_workdir(SRC), "actionlint", "actionlint", "-color=false"),
    ]


def test_run(image: Image, source: dagger.Directory, select: str) -> dagger.Container:
    """The test suite run (whatever its outcome) with its JUnit report at JUNIT_REPORT.

    ``CI=true`` makes a test whose tool is missing fail instead of skipping, as in CI. The
    suite runs as root with root's capabilities, as CI runs it: a few tests make private
    mount namespaces (``unshare --mount``).
    """
    return (
        python_dev(image, source)
        .with_env_variable("CI", "true")
        .with_exec(
            [
                "sh",
                "-c",
                # The engine gives every exec its own OTEL_* telemetry variables; members
                # started by the tests would trace into it, unlike on a developer machine.
                'unset $(env | sed -n "s/^\\(OTEL_[A-Z_]*\\)=.*/\\1/p"); exec "$@"',
                "pytest",
                "python",
                "-m",
                "pytest",
                "-m",
                select,
                "-p",
                "no:cacheprovider",
                f"--junitxml={JUNIT_REPORT}",
            ],
            expect=dagger.ReturnType.ANY,
            insecure_root_capabilities=True,
        )
    )


def image_labels(*, version: str, revision: str, source_url: str, created: str) -> dict[str, str]:
    """The OCI labels of the store's image; unknown values are left out, never faked."""
    labels = {
        "version": version,
        "revision": revision,
        "source": source_url,
        "created": created,
    }
    return {OCI_LABEL + key: value for key, value in labels.items() if value}


def with_auth(
    container: dagger.Container, address: str, username: str, password: dagger.Secret
) -> dagger.Container:
    """``container`` with credentials for the registry of ``address``, as a secret only."""
    return container.with_registry_auth(images.registry_host(address), username, password)


def image_build(
    source: dagger.Directory,
    *,
    base_image: str,
    version: str,
    revision: str,
    source_url: str,
    created: str = "",
) -> dagger.Container:
    """The store's image from the repository's Dockerfile, labelled (OCI annotations).

    ``base_image`` overrides the Dockerfile's ``BASE_IMAGE`` so the mirror applies to it.
    """
    container = source.docker_build(
        build_args=[
            dagger.BuildArg(name="BASE_IMAGE", value=base_image),
            dagger.BuildArg(name="VERSION", value=version or "dev"),
        ]
    )
    labels = image_labels(
        version=version, revision=revision, source_url=source_url, created=created
    )
    for name, value in labels.items():
        container = container.with_label(name, value)
    return container


async def revision_tag(container: dagger.Container, run: Executor = ENGINE) -> str:
    """The image's revision label, the default (immutable) tag of a push."""
    revision = await run.label("revision-label", container, OCI_LABEL + "revision")
    if not revision:
        raise StageFailed(
            "publish: no --tag given and the container has no"
            " org.opencontainers.image.revision label\n"
            "  what to do: pass --tag, or build the image with --revision"
        )
    return revision


async def run_checks(stage: str, checks: Sequence[Check], run: Executor = ENGINE) -> str:
    """Run every check concurrently; raise one error listing all failures, else the summary.

    ``stage`` names the summary; each check's steps go through ``run`` under its own name.
    """
    results: dict[str, CheckResult] = {}

    async def one(check: Check) -> None:
        try:
            code = await run.exit_code(check.name, check.container)
            output = await run.stdout(check.name, check.container)
            output += await run.stderr(check.name, check.container)
        except StageFailed as failed:  # its setup failed (an install, a pull): a failure too
            code = failed.exit_code if isinstance(failed, CommandFailed) else 1
            output = str(failed)
        results[check.name] = CheckResult(check.name, check.command, code, output)

    async with anyio.create_task_group() as group:
        for check in checks:
            group.start_soon(one, check)
    ordered = [results[c.name] for c in checks]
    text = summary(stage, ordered)
    if not all(r.ok for r in ordered):
        raise StageFailed(f"{text}\n\n  what to do: {LINT_ADVICE}")
    return text


async def run_tests(ran: dagger.Container, run: Executor = ENGINE) -> dagger.File:
    """The JUnit report of a finished test run; an error naming the failures if it failed."""
    code = await run.exit_code("test", ran)
    report = ran.file(JUNIT_REPORT)
    if code != 0:
        failing = failing_tests(await run.contents("test", report, note="the JUnit report"))
        raise StageFailed("test: " + failure_message(code, failing))
    return report
