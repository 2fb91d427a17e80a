"""The Dagger wiring of lint, test, build, publish, publish-to and ci, read from their plans.

No engine runs here: each function builds its pipeline with the SDK's lazy objects and
``python -m kvstore_ci plan`` (``kvstore_ci.dryrun``) reads the graph. The assertions are
the properties a reviewer checks: pinned images, caches where they save time, secrets only
as secrets, pushes never cached, labels set, and the exact commands.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from dagger import dag
from kvstore_ci import KvstoreCi, dryrun, images, stages
from kvstore_ci.dryrun import PlanError, plan_function, split_command
from kvstore_ci.plan import Node, Op, Stage, StagePlan, describe, functions_of, render, to_json

from tests.ci.function_flags import flags_of
from tests.tooling import ROOT

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def plan(name: str, **flags: str) -> list[StagePlan]:
    return plan_function(KvstoreCi, name, {k.replace("_", "-"): v for k, v in flags.items()})


def stage(plans: list[StagePlan], name: str) -> StagePlan:
    return next(p for p in plans if p.name == name)


def result(p: StagePlan) -> Node:
    assert p.result is not None, f"stage {p.name} has no lazy result"
    return p.result


def execs(node: Node) -> list[list[str]]:
    return [list(op.args["args"]) for op in node.find("withExec")]  # type: ignore[arg-type]


def images_of(node: Node) -> list[str]:
    return [str(op.args["address"]) for op in node.walk() if op.name == "from"]


def strings(value: object) -> Iterator[str]:
    """Every plain string in a plan value (nested objects are walked separately)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)


def cache_key(value: object) -> str:
    assert isinstance(value, Node) and value.type == "CacheVolume"
    return str(value.ops[-1].args["key"])


def all_ops(plans: list[StagePlan]) -> list[Op]:
    ops: list[Op] = []
    for p in plans:
        if p.result is not None:
            ops += p.result.walk()
        for node in p.inputs.values():
            ops += node.walk()
    return ops


# --- lint ---------------------------------------------------------------------------------


def test_lint_runs_every_tool_with_its_exact_command() -> None:
    plans = plan("lint")
    commands = {p.name: execs(result(p))[-1] for p in plans}
    assert commands == {
        "ruff-check": ["ruff", "check", "--no-cache", "kvstore", "ci/src", "tests"],
        "ruff-format": ["ruff", "format", "--no-cache", "--check", "kvstore", "ci/src", "tests"],
        "mypy": ["mypy", "--strict", "--cache-dir", "/cache/mypy", "kvstore", "ci/src", "tests"],
        "yamllint": ["yamllint", "--strict", ".github", "deploy/kubernetes"],
        "terraform-fmt": ["terraform", "fmt", "-check", "-recursive", "-diff", "."],
        "helm-lint-staging": [
            *("helm", "lint", "--strict", "charts/kvstore"),
            *("--values", "environments/staging/values.yaml"),
        ],
        "helm-lint-production": [
            *("helm", "lint", "--strict", "charts/kvstore"),
            *("--values", "environments/production/values.yaml"),
        ],
        "actionlint": ["actionlint", "-color=false"],
    }


def test_lint_tools_never_stop_each_other() -> None:
    """Each tool's exec accepts any exit code, so one failure cannot hide the others."""
    for p in plan("lint"):
        last = result(p).find("withExec")[-1]
        assert last.args.get("expect") == "ANY", p.name
        assert p.actions == ("exit-code", "stdout", "stderr")


def test_lint_images_are_the_pinned_ones() -> None:
    expected = {
        "ruff-check": images.PYTHON,
        "mypy": images.PYTHON,
        "yamllint": images.PYTHON,
        "terraform-fmt": images.TERRAFORM,
        "helm-lint-staging": images.HELM,
        "helm-lint-production": images.HELM,
        "actionlint": images.ACTIONLINT,
    }
    plans = plan("lint")
    for name, image in expected.items():
        node = result(stage(plans, name))
        (base,) = [str(op.args["address"]) for op in node.ops if op.name == "from"]
        assert base == image, name
        for address in images_of(node):  # the tools copied in come from pinned images too
            assert DIGEST.search(address), (name, address)


def test_lint_tools_see_only_what_they_check() -> None:
    """terraform and helm get their subtree, so unrelated edits keep their cache."""
    plans = plan("lint")
    mounted = {
        name: [
            op
            for op in result(stage(plans, name)).walk()
            if op.on == "Directory" and op.name == "directory"
        ]
        for name in ("terraform-fmt", "helm-lint-staging")
    }
    assert mounted["terraform-fmt"][0].args["path"] == stages.TERRAFORM_DIR
    assert mounted["helm-lint-staging"][0].args["path"] == stages.KUBERNETES_DIR


def test_python_stages_cache_pip_and_mypy() -> None:
    plans = plan("lint")
    caches = {
        p.name: {
            str(op.args["path"]): cache_key(op.args["cache"])
            for op in result(p).find("withMountedCache")
        }
        for p in plans
    }
    assert caches["ruff-check"]["/root/.cache/pip"] == "kvstore-pip"
    assert "/cache/mypy" not in caches["ruff-check"]
    assert caches["mypy"]["/cache/mypy"] == "kvstore-mypy"


def test_mirror_rewrites_every_image_and_keeps_digests() -> None:
    plans = plan_function(KvstoreCi, "lint", {}, {"mirror": "mirror.internal:5000/hub"})
    for p in plans:
        for address in images_of(result(p)):
            assert address.startswith("mirror.internal:5000/hub/"), address
            assert DIGEST.search(address)


# --- test ---------------------------------------------------------------------------------


def test_test_runs_pytest_with_junit_in_the_pinned_image() -> None:
    ran, returned = plan("test")
    node = result(ran)
    (base,) = [str(op.args["address"]) for op in node.ops if op.name == "from"]
    assert base == images.PYTHON
    command = execs(node)[-1]
    assert command[:2] == ["sh", "-c"] and "unset" in command[2] and "OTEL_" in command[2]
    assert command[3:] == [
        "pytest",
        "python",
        "-m",
        "pytest",
        "-m",
        "not docker and not engine and not netfault and not kubernetes and not peers",
        "-p",
        "no:cacheprovider",
        f"--junitxml={stages.JUNIT_REPORT}",
    ]
    assert node.find("withExec")[-1].args["expect"] == "ANY"
    assert ran.actions == ("exit-code",)
    # what it returns is the report of that very run
    assert returned.name == "returned"
    report = result(returned)
    assert report.ops[:-1] == node.ops
    assert (report.ops[-1].name, report.ops[-1].args["path"]) == ("file", stages.JUNIT_REPORT)
    cache = node.find("withMountedCache")
    assert "/root/.cache/pip" in [op.args["path"] for op in cache]


def test_pip_cache_is_mounted_before_the_install() -> None:
    ops = [op.name for op in result(plan("test")[0]).ops]
    assert ops.index("withMountedCache") < ops.index("withExec")


def test_test_selection_is_an_argument() -> None:
    p = stage(plan("test", select="slow"), "test")
    command = execs(result(p))[-1]
    selection = max(i for i, word in enumerate(command) if word == "-m") + 1
    assert command[selection] == "slow"


def test_source_defaults_to_the_checkout_without_local_clutter() -> None:
    p = stage(plan("test"), "test")
    host = next(op for op in result(p).walk() if op.on == "Host" and op.name == "directory")
    assert host.args["path"] == "."
    excluded = host.args["exclude"]
    assert isinstance(excluded, list)
    for clutter in (".venv", ".tools", ".git", "**/__pycache__"):
        assert clutter in excluded


# --- build --------------------------------------------------------------------------------


def test_build_uses_the_dockerfile_with_the_pinned_base_and_oci_labels() -> None:
    (p,) = plan("build", version="1.4.0", revision="0123abc", source_url="https://example.org/kv")
    node = result(p)
    (docker_build,) = node.find("dockerBuild")
    assert docker_build.args["buildArgs"] == [
        {"name": "BASE_IMAGE", "value": images.PYTHON},
        {"name": "VERSION", "value": "1.4.0"},
    ]
    labels = {op.args["name"]: op.args["value"] for op in node.find("withLabel")}
    created = labels.pop("org.opencontainers.image.created")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", str(created))
    assert labels == {
        "org.opencontainers.image.version": "1.4.0",
        "org.opencontainers.image.revision": "0123abc",
        "org.opencontainers.image.source": "https://example.org/kv",
    }


def test_build_leaves_unknown_labels_out_rather_than_faking_them() -> None:
    (p,) = plan("build")
    names = {op.args["name"] for op in result(p).find("withLabel")}
    assert names == {"org.opencontainers.image.created"}


def test_dockerfile_default_base_is_the_pipelines_pinned_python() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"ARG BASE_IMAGE={images.PYTHON}\n" in dockerfile


# --- publish ------------------------------------------------------------------------------


def test_publish_and_publish_to_are_never_cached_and_build_type_functions_are() -> None:
    functions = functions_of(KvstoreCi)
    assert functions["publish"].cache == "never"
    assert functions["publish-to"].cache == "never"
    for name in ("lint", "test", "build", "ci", "python-base"):
        assert functions[name].cache is None, name


def test_publish_authenticates_with_the_ecr_token_as_a_secret() -> None:
    plans = plan("publish", repository="kvstore", tag="0123abc", region="eu-west-1")
    login, push = stage(plans, "ecr-login"), stage(plans, "publish")
    registry = "<account>.dkr.ecr.eu-west-1.amazonaws.com"
    assert login.actions == (
        "ecr get-authorization-token (region eu-west-1)",
        "ecr describe-repositories kvstore",
    )
    (auth,) = result(push).find("withRegistryAuth")
    assert auth.args["address"] == registry
    assert auth.args["username"] == "AWS"
    secret = auth.args["secret"]
    assert isinstance(secret, Node) and secret.type == "Secret"
    assert push.actions == (f"publish {registry}/kvstore:0123abc",)
    # the container pushed is the module's own build
    assert result(push).find("dockerBuild")


def test_publish_takes_aws_credentials_only_as_secrets() -> None:
    plans = plan(
        "publish",
        repository="kvstore",
        aws_access_key_id="env://AWS_ACCESS_KEY_ID",
        aws_secret_access_key="env://AWS_SECRET_ACCESS_KEY",
        aws_session_token="env://AWS_SESSION_TOKEN",
    )
    inputs = stage(plans, "ecr-login").inputs
    assert {name: node.ops[-1].args["uri"] for name, node in inputs.items()} == {
        "aws-access-key-id": "env://AWS_ACCESS_KEY_ID",
        "aws-secret-access-key": "env://AWS_SECRET_ACCESS_KEY",
        "aws-session-token": "env://AWS_SESSION_TOKEN",
    }
    assert all(node.type == "Secret" for node in inputs.values())
    signature = functions_of(KvstoreCi)["publish"]
    for name in ("aws-access-key-id", "aws-secret-access-key", "aws-session-token"):
        assert "Secret" in str(signature.arg(name).type), name


def test_secrets_appear_nowhere_but_in_secret_objects() -> None:
    """No plain argument, env variable, label or command carries a secret reference."""
    marker = "SENTINEL_SECRET_NAME"
    plans = plan(
        "publish",
        repository="kvstore",
        aws_access_key_id=f"env://{marker}_1",
        aws_secret_access_key=f"env://{marker}_2",
    ) + plan("publish-to", address="registry.local:5000/kv:1", password=f"env://{marker}_3")
    seen_in_secrets = 0
    for op in all_ops(plans):
        texts = [t for v in op.args.values() for t in strings(v)]
        if op.on == "Query" and op.name == "secret":
            seen_in_secrets += any(marker in t for t in texts)
            continue
        assert not any(marker in t for t in texts), op
        assert op.name not in {"setSecret", "withEnvVariable"} or "AWS" not in str(op.args)
    assert seen_in_secrets == 3
    for p in plans:
        assert not any(marker in action for action in p.actions)


def test_publish_to_uses_the_registry_of_the_address() -> None:
    (p,) = plan("publish-to", address="registry.local:5000/team/kvstore:7", username="ci")
    (auth,) = result(p).find("withRegistryAuth")
    assert auth.args["address"] == "registry.local:5000"
    assert auth.args["username"] == "ci"
    assert p.actions == ("publish registry.local:5000/team/kvstore:7",)


def test_publish_default_tag_is_the_revision_label() -> None:
    plans = plan("publish", repository="kvstore")
    label = stage(plans, "revision-label")
    assert label.actions == ("label org.opencontainers.image.revision",)
    assert result(label).find("dockerBuild"), "read from the image being pushed"
    assert stage(plans, "publish").actions[0].endswith("/kvstore:<revision label>")


# --- ci -----------------------------------------------------------------------------------


def test_ci_plans_lint_test_and_build_together() -> None:
    plans = plan("ci")
    names = [p.name for p in plans]
    lint = [p.name for p in plan("lint")]
    # the test stage is awaited twice: its exit code, then its report for the directory
    assert sorted(names) == sorted([*lint, "test", "test", "build", "returned"])
    assert names[-1] == "returned"
    assert result(stage(plans, "build")).find("dockerBuild")
    assert stage(plans, "build").actions == ("sync",)
    report = [p for p in plans if p.name == "test"][-1]
    assert report.actions == ("contents",)
    reports = result(plans[-1])
    assert [op.args["path"] for op in reports.find("withNewFile")] == [
        "lint.txt",
        "summary.txt",
        "junit.xml",
    ]


# --- the command line ---------------------------------------------------------------------


def test_missing_arguments_become_named_placeholders() -> None:
    (p,) = plan("publish-to")
    (auth,) = result(p).find("withRegistryAuth")
    assert auth.args["username"] == "<username>"
    assert p.actions == ("publish <address>",)
    secret = auth.args["secret"]
    assert isinstance(secret, Node)
    assert secret.ops[-1].args == {"uri": "<password>"}


def test_unknown_function_or_argument_is_a_clear_error() -> None:
    with pytest.raises(PlanError, match="no function 'deploy-everything'"):
        plan("deploy-everything")
    with pytest.raises(PlanError, match="has no argument --colour"):
        plan_function(KvstoreCi, "lint", {"colour": "red"})


def test_command_line_reads_module_flags_before_the_function() -> None:
    assert split_command(["--mirror", "m:5000", "build", "--version=1", "--revision", "ab"]) == (
        {"mirror": "m:5000"},
        "build",
        {"version": "1", "revision": "ab"},
    )


def test_plan_command_prints_text() -> None:
    """The real command line, once; the other paths run in-process (importing dagger is slow)."""
    text = subprocess.run(
        [
            *(sys.executable, "-m", "kvstore_ci", "plan", "publish-to"),
            *("--address", "r.local:5000/kv:1", "--password", "env://REG_PASS"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert (
        "withRegistryAuth address=r.local:5000 username=<username> secret=secret(env://REG_PASS)"
        in text
    )
    assert "=> publish r.local:5000/kv:1" in text


def test_plan_command_prints_json_and_rejects_unknown_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert dryrun.main(["--json", "test"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["stage"] == "test"
    ops = data[0]["result"]["ops"]
    assert ops[1] == {"on": "Container", "op": "from", "args": {"address": images.PYTHON}}
    assert dryrun.main(["nope"]) == 2
    assert "no function 'nope'" in capsys.readouterr().err


def test_a_secret_value_never_reaches_a_plan() -> None:
    """publish turns the ECR password into a secret with set_secret; its value stays out."""
    value = "ecr-password-value-7f3a"
    secret = dag.set_secret("ecr-token-registry.example", value)
    container = dag.container().from_(images.PYTHON).with_registry_auth("r.example", "AWS", secret)
    described = describe(Stage("push", container, ("publish r.example/kv:1",)))
    assert value not in render([described])
    assert value not in json.dumps(to_json(described))
    (auth,) = result(described).find("withRegistryAuth")
    secret_node = auth.args["secret"]
    assert isinstance(secret_node, Node)
    assert secret_node.ops[-1].args == {"name": "ecr-token-registry.example"}


def test_text_plan_reads_top_down() -> None:
    text = render(plan("build", revision="abc"))
    lines = text.splitlines()
    assert lines[0] == "build:"
    assert lines[1].startswith("  start host.directory(., [.git, .venv")
    assert lines[2].startswith("  dockerBuild buildArgs=[{name=BASE_IMAGE, value=docker.io/")
    assert "  withLabel name=org.opencontainers.image.revision value=abc" in lines


@pytest.mark.parametrize(
    ("address", "host"),
    [
        (
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/kvstore:abc",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        ),
        ("127.0.0.1:5000/kvstore:1", "127.0.0.1:5000"),
        ("localhost/kvstore:1", "localhost"),
        ("library/python:3.11", "docker.io"),
        ("kvstore:1", "docker.io"),
    ],
)
def test_registry_host_is_read_as_docker_push_reads_it(address: str, host: str) -> None:
    assert images.registry_host(address) == host


def test_a_call_that_would_fail_fails_its_plan_with_the_same_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Optional arguments keep their defaults: the plan says what the call would say."""
    assert dryrun.main(["deploy", "--env", "staging", "--revision", "abc"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("plan: deploy would fail:\n")
    assert "deploy: the gitops strategy needs --git-token and --argocd-token" in err


def test_every_function_has_a_plan() -> None:
    """Each function runs to its end with the recorder: nothing awaits outside the seam."""
    for name in sorted(n for n in functions_of(KvstoreCi) if n):
        plans = plan_function(KvstoreCi, name, flags_of(name))
        assert plans, name
        assert all(p.actions or p.name == "returned" for p in plans), name
