"""The environment roots and the bootstrap agree: same code, own state, right branch."""

from __future__ import annotations

from tests.deploy.terraform import hcl

ENVIRONMENTS = ("staging", "production")
# DESIGN.md: staging deploys from the staging branch, production from main.
BRANCHES = {"staging": "staging", "production": "main"}
# The only file of an environment root besides terraform.tfvars that may differ.
BACKEND_FILE = "backend.tf"


def backend(env: str) -> hcl.Body:
    ((kind, config),) = hcl.backend_blocks(hcl.parse_file(hcl.ENVS / env / BACKEND_FILE))
    assert kind == "s3"
    return config


def tfvars(env: str) -> hcl.Body:
    return hcl.parse_file(hcl.ENVS / env / "terraform.tfvars")


def account(env: str) -> hcl.Body:
    return hcl.parse_file(hcl.BOOTSTRAP / "accounts" / f"{env}.tfvars")


def test_environment_roots_hold_the_same_files() -> None:
    files = {env: sorted(p.name for p in (hcl.ENVS / env).iterdir()) for env in ENVIRONMENTS}
    assert files["staging"] == files["production"]
    assert BACKEND_FILE in files["staging"] and "terraform.tfvars" in files["staging"]


def test_environment_roots_differ_only_in_their_inputs() -> None:
    """Every .tf file but the backend is byte-identical; the backend differs only in values."""
    staging, production = (hcl.ENVS / env for env in ENVIRONMENTS)
    for path in sorted(staging.glob("*.tf")):
        if path.name != BACKEND_FILE:
            assert path.read_text() == (production / path.name).read_text(), path.name
    assert set(backend("staging")) == set(backend("production"))
    assert set(tfvars("staging")) == set(tfvars("production"))


def test_environment_roots_are_thin_callers_of_the_stack() -> None:
    main = hcl.parse_file(hcl.ENVS / "staging" / "main.tf")
    assert set(main) == {"provider", "module"}
    ((name, call),) = hcl.labelled(main, "module")
    assert (name, call["source"]) == ("stack", "../../modules/stack")
    variables = dict(
        hcl.labelled(hcl.parse_file(hcl.ENVS / "staging" / "variables.tf"), "variable")
    )
    passed = {key for key in call if key != "source"}
    # Every root variable reaches the stack, except the provider's own settings.
    assert passed == set(variables) - {"region", "account_id"}
    assert all(call[key] == f"${{var.{key}}}" for key in passed)


def test_each_environment_names_itself_and_deploys_from_its_branch() -> None:
    for env in ENVIRONMENTS:
        values = tfvars(env)
        assert values["environment"] == env
        assert values["deploy_branch"] == BRANCHES[env]


def test_state_keys_are_unique_per_environment_and_bootstrap() -> None:
    keys = [backend(env)["key"] for env in ENVIRONMENTS]
    bootstrap_backends = hcl.backend_blocks(hcl.parse_file(hcl.BOOTSTRAP / "versions.tf"))
    keys.append(bootstrap_backends[0][1]["key"])
    assert len(set(keys)) == len(keys), keys
    for env in ENVIRONMENTS:
        assert f"/{env}/" in backend(env)["key"], "a key should say whose state it is"


def test_backends_point_at_the_bucket_and_region_of_their_account() -> None:
    for env in ENVIRONMENTS:
        config, values, bootstrap = backend(env), tfvars(env), account(env)
        tfbackend = hcl.parse_file(hcl.BOOTSTRAP / "accounts" / f"{env}.s3.tfbackend")
        assert config["bucket"] == bootstrap["state_bucket_name"] == tfbackend["bucket"]
        assert config["region"] == values["region"] == bootstrap["region"] == tfbackend["region"]
        assert values["account_id"] == bootstrap["account_id"]


def test_bootstrap_roles_match_the_environment_roots() -> None:
    """The infrastructure role of an environment may only touch the state key that the
    environment's backend uses, and trusts the branch the environment deploys from."""
    for env in ENVIRONMENTS:
        environments = account(env)["environments"]
        assert set(environments) == {env}
        assert environments[env]["state_key"] == backend(env)["key"]
        assert environments[env]["branch"] == tfvars(env)["deploy_branch"]
        assert account(env)["github_repository"] == tfvars(env)["github_repository"]


def test_staging_saves_on_nat_and_production_has_one_per_zone() -> None:
    assert tfvars("staging")["single_nat_gateway"] is True
    assert tfvars("production")["single_nat_gateway"] is False
    for env in ENVIRONMENTS:
        assert len(tfvars(env)["availability_zones"]) == 3


def test_environments_use_separate_accounts_and_networks() -> None:
    """Separate accounts keep one environment's credentials away from the other's resources;
    separate CIDRs keep peering or a later shared network possible."""
    staging, production = tfvars("staging"), tfvars("production")
    assert staging["account_id"] != production["account_id"]
    assert staging["vpc_cidr"] != production["vpc_cidr"]
