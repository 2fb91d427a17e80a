"""``terraform validate`` and ``terraform test`` where they run offline.

No provider can be downloaded here, so only the provider-free modules can be initialised:
the naming rules, the subnet and NAT arithmetic and the OIDC subject. They hold the logic
most likely to be wrong in a way a reader misses, and each has a ``tests/*.tftest.hcl``
that plans it with real Terraform. The AWS modules are covered by the structural tests and
checkov instead (docs/infrastructure.md, "What is tested").
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.terraform import hcl
from tests.deploy.terraform.test_environments import ENVIRONMENTS, tfvars
from tests.tooling import require_tool

PROVIDER_FREE = ("naming", "network-layout", "github-oidc-subject")


def terraform_env(data_dir: Path) -> dict[str, str]:
    """Environment for an offline run: .terraform kept out of the source tree, no CLI
    config, no prompts, no version check over the network."""
    return {
        **os.environ,
        "TF_DATA_DIR": str(data_dir),
        "TF_CLI_CONFIG_FILE": os.devnull,
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",
    }


def run(
    args: list[str], module: Path, data_dir: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    terraform = require_tool("terraform")
    return subprocess.run(
        [terraform, f"-chdir={module}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=terraform_env(data_dir),
    )


def init(module: Path, data_dir: Path) -> None:
    result = run(["init", "-backend=false", "-no-color"], module, data_dir)
    assert result.returncode == 0, result.stdout + result.stderr


def test_provider_free_modules_are_the_ones_expected(directories: list[hcl.Directory]) -> None:
    """A module that gains a provider would silently drop out of the offline tests."""
    free = {
        directory.path.name
        for directory in directories
        if directory.path.parent == hcl.MODULES
        and not any(
            "resource" in body or "data" in body or "required_providers" in str(body)
            for body in directory.files.values()
        )
    }
    assert free == set(PROVIDER_FREE)


@pytest.mark.parametrize("name", PROVIDER_FREE)
def test_provider_free_module_validates_and_passes_its_tests(name: str, tmp_path: Path) -> None:
    module = hcl.MODULES / name
    assert list((module / "tests").glob("*.tftest.hcl")), f"{name} has no terraform tests"
    init(module, tmp_path)
    validate = run(["validate", "-no-color"], module, tmp_path)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    test = run(["test", "-no-color"], module, tmp_path)
    assert test.returncode == 0, test.stdout + test.stderr
    assert " 0 failed" in test.stdout and "passed" in test.stdout


def test_terraform_test_fails_on_a_wrong_assertion(tmp_path: Path) -> None:
    """The harness notices a failing run (it is not reading a stale or empty result)."""
    module = tmp_path / "module"
    (module / "tests").mkdir(parents=True)
    for source in (hcl.MODULES / "network-layout").glob("*.tf"):
        (module / source.name).write_text(source.read_text())
    (module / "tests" / "wrong.tftest.hcl").write_text(
        'variables {\n  vpc_cidr = "10.0.0.0/16"\n'
        '  availability_zones = ["a", "b", "c"]\n  single_nat_gateway = true\n}\n'
        'run "wrong" {\n  command = plan\n  assert {\n'
        "    condition     = length(output.nat_gateway_zones) == 3\n"
        '    error_message = "expected to fail"\n  }\n}\n'
    )
    init(module, tmp_path / "data")
    result = run(["test", "-no-color"], module, tmp_path / "data")
    assert result.returncode != 0
    assert "expected to fail" in result.stdout + result.stderr


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_environment_role_trusts_exactly_its_deployment_subject(
    env: str, tmp_path: Path
) -> None:
    """Evaluate the subject with Terraform for the environment's real inputs."""
    module = hcl.MODULES / "github-oidc-subject"
    values = tfvars(env)
    init(module, tmp_path)
    result = run(
        [
            "console",
            f"-var=github_repository={values['github_repository']}",
            f"-var=github_environment={values['environment']}",
            f"-var=branch={values['deploy_branch']}",
        ],
        module,
        tmp_path,
        stdin="local.deployment_subject\n",
    )
    assert result.returncode == 0, result.stderr
    expected = (
        f"repo:{values['github_repository']}:environment:{env}"
        f":ref:refs/heads/{values['deploy_branch']}"
    )
    assert result.stdout.strip() == f'"{expected}"'


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_environment_subnet_plan_fits_its_vpc(env: str, tmp_path: Path) -> None:
    """The environment's own CIDR and zones give distinct subnets inside the VPC."""
    module = hcl.MODULES / "network-layout"
    values = tfvars(env)
    zones = "[" + ",".join(f'"{zone}"' for zone in values["availability_zones"]) + "]"
    init(module, tmp_path)
    result = run(
        [
            "console",
            f"-var=vpc_cidr={values['vpc_cidr']}",
            f"-var=availability_zones={zones}",
            f"-var=single_nat_gateway={str(values['single_nat_gateway']).lower()}",
        ],
        module,
        tmp_path,
        stdin="jsonencode([local.private_subnets, local.public_subnets, local.nat_gateway_zones])"
        "\n",
    )
    assert result.returncode == 0, result.stderr
    private, public, nat_zones = json.loads(json.loads(result.stdout))
    vpc = ipaddress.IPv4Network(values["vpc_cidr"])
    subnets = [ipaddress.IPv4Network(c) for c in [*private.values(), *public.values()]]
    assert all(subnet.subnet_of(vpc) for subnet in subnets)
    assert not any(a.overlaps(b) for i, a in enumerate(subnets) for b in subnets[i + 1 :])
    assert len(nat_zones) == (1 if values["single_nat_gateway"] else len(private))


ROOTS = ("envs/staging", "envs/production", "bootstrap")
PROVIDER_UNREACHABLE = (
    "Failed to query available provider packages",
    "Failed to install provider",
)


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of deploy/terraform, so a successful init (with registry access) writes its
    lock files there and not into the source tree."""
    copy = tmp_path_factory.mktemp("terraform") / "terraform"
    shutil.copytree(hcl.TERRAFORM_ROOT, copy, ignore=shutil.ignore_patterns(".terraform"))
    return copy


@pytest.mark.parametrize("root", ROOTS)
def test_root_loads_its_module_tree_and_validates_where_the_provider_can_be_had(
    root: str, tree_copy: Path, tmp_path: Path
) -> None:
    """``terraform init`` reads the whole configuration and installs every module before it
    asks the registry for the AWS provider. Offline, that request must be the only error;
    with registry access, the root must also pass ``terraform validate``."""
    directory = tree_copy / root
    expected_modules = {name for name, _ in hcl.labelled_all(hcl.load_directory(directory))}
    result = run(["init", "-backend=false", "-no-color"], directory, tmp_path)
    output = result.stdout + result.stderr
    if result.returncode == 0:
        validate = run(["validate", "-no-color"], directory, tmp_path)
        assert validate.returncode == 0, validate.stdout + validate.stderr
        return
    assert output.count("Error: ") == 1, output
    assert any(reason in output for reason in PROVIDER_UNREACHABLE), output
    installed = {line.split()[1].split(".")[0] for line in output.splitlines() if " in " in line}
    assert expected_modules <= installed, output
