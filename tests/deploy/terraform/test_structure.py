"""Review rules and the issue's requirements, checked on the parsed deploy/terraform tree."""

from __future__ import annotations

import pytest

from tests.deploy.terraform import hcl

STANDARD_FILES = {"main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"}
REQUIRED_MODULES = {"network", "cluster", "registry", "ci-identity", "state-bucket", "stack"}


def by_name(directories: list[hcl.Directory]) -> dict[str, hcl.Directory]:
    return {directory.name: directory for directory in directories}


def resources(directory: hcl.Directory, type_name: str) -> list[hcl.Body]:
    return [
        body
        for parsed in directory.files.values()
        for kind, _, body in hcl.typed(parsed, "resource")
        if kind == type_name
    ]


def test_the_tree_has_modules_roots_and_bootstrap(directories: list[hcl.Directory]) -> None:
    names = set(by_name(directories))
    assert {f"modules/{module}" for module in REQUIRED_MODULES} <= names
    assert {"envs/staging", "envs/production", "bootstrap"} <= names


def test_every_module_has_the_standard_files() -> None:
    for module in sorted(hcl.MODULES.iterdir()):
        present = {path.name for path in module.iterdir()}
        assert present >= STANDARD_FILES, f"{module.name} lacks {STANDARD_FILES - present}"


def test_every_variable_is_typed_and_described(directories: list[hcl.Directory]) -> None:
    problems = [
        problem
        for directory in directories
        for name, body in directory.files.items()
        for problem in hcl.variable_problems(body, f"{directory.name}/{name}")
    ]
    assert problems == []


def test_every_output_is_described(directories: list[hcl.Directory]) -> None:
    problems = [
        problem
        for directory in directories
        for name, body in directory.files.items()
        for problem in hcl.output_problems(body, f"{directory.name}/{name}")
    ]
    assert problems == []


def test_validations_have_helpful_messages(directories: list[hcl.Directory]) -> None:
    """A validation's message must say what is expected, not just that something failed."""
    short = [
        f"{directory.name}: {name}"
        for directory in directories
        for body in directory.files.values()
        for name, variable in hcl.labelled(body, "variable")
        for validation in hcl.as_list(variable.get("validation"))
        if len(str(validation.get("error_message", ""))) < 30
    ]
    assert short == []


def test_no_policy_allows_every_action_on_every_resource(
    directories: list[hcl.Directory],
) -> None:
    problems = [
        problem
        for directory in directories
        for name, body in directory.files.items()
        for problem in hcl.star_on_star_problems(body, f"{directory.name}/{name}")
    ]
    assert problems == []


def test_every_module_source_is_pinned(directories: list[hcl.Directory]) -> None:
    problems = [
        problem
        for directory in directories
        for name, body in directory.files.items()
        for problem in hcl.module_source_problems(body, directory.path, f"{directory.name}/{name}")
    ]
    assert problems == []


def test_every_directory_constrains_terraform_and_provider_versions(
    directories: list[hcl.Directory],
) -> None:
    problems = [p for directory in directories for p in hcl.version_constraint_problems(directory)]
    assert problems == []


def test_every_backend_is_s3_with_native_locking(directories: list[hcl.Directory]) -> None:
    roots = {"envs/staging", "envs/production", "bootstrap"}
    for directory in directories:
        backends = [b for body in directory.files.values() for b in hcl.backend_blocks(body)]
        if directory.name in roots:
            assert len(backends) == 1, directory.name
            kind, config = backends[0]
            assert kind == "s3", directory.name
            assert config.get("use_lockfile") is True, directory.name
            assert "dynamodb_table" not in config, directory.name
        else:
            assert backends == [], f"module {directory.name} must not declare a backend"


# ---------------------------------------------------------------------------------------
# CI identity: trust pinned to the repository, environment and branch.


def test_the_only_web_identity_trust_pins_audience_and_subject(
    directories: list[hcl.Directory],
) -> None:
    trusts = [
        (directory.name, statement)
        for directory in directories
        for body in directory.files.values()
        for _, statement in hcl.web_identity_trusts(body)
    ]
    assert [name for name, _ in trusts] == ["modules/ci-identity"]
    ((_, statement),) = trusts
    claims = hcl.conditions_by_claim(statement)
    assert set(claims) == {"aud", "sub"}
    assert claims["aud"]["test"] == "StringEquals"
    assert claims["aud"]["values"] == ["sts.amazonaws.com"]
    # Subject string and operator come from the provider-free module whose terraform test
    # asserts their exact values (modules/github-oidc-subject/tests).
    assert claims["sub"]["values"] == ["${module.subject.subject}"]
    assert claims["sub"]["test"] == "${module.subject.condition_test}"
    principals = hcl.as_list(statement["principals"])
    assert [p["type"] for p in principals] == ["Federated"]


def ci_identity_calls(directories: list[hcl.Directory]) -> list[tuple[str, str, hcl.Body]]:
    return [
        (directory.name, name, call)
        for directory in directories
        for body in directory.files.values()
        for name, call in hcl.labelled(body, "module")
        if str(call["source"]).endswith("modules/ci-identity") or call["source"] == "../ci-identity"
    ]


def test_deployment_roles_pass_repository_environment_and_branch(
    directories: list[hcl.Directory],
) -> None:
    calls = ci_identity_calls(directories)
    assert {(where, name) for where, name, _ in calls} == {
        ("modules/stack", "application_role"),
        ("bootstrap", "infrastructure_role"),
        ("bootstrap", "plan_role"),
    }
    for where, name, call in calls:
        assert call["github_repository"] == "${var.github_repository}", (where, name)
        if call.get("pull_request_plan") is True:
            assert "github_environment" not in call and "branch" not in call, (where, name)
        else:
            assert call["github_environment"] in {"${var.environment}", "${each.key}"}
            assert call["branch"] in {"${var.deploy_branch}", "${each.value.branch}"}


def test_the_pull_request_role_only_gets_read_and_lock_permissions(
    directories: list[hcl.Directory],
) -> None:
    bootstrap = by_name(directories)["bootstrap"]
    documents = {
        name: document
        for body in bootstrap.files.values()
        for kind, name, document in hcl.typed(body, "data")
        if kind == "aws_iam_policy_document"
    }
    writes = []
    for statement in hcl.as_list(documents["plan"]["statement"]):
        for action in hcl.as_list(statement["actions"]):
            verb = action.split(":", 1)[1]
            if not verb.startswith(("Describe", "Get", "List")):
                writes.append(action)
    assert writes == []
    # The shared state policy may write only the lock object.
    for statement in hcl.as_list(documents["state"]["statement"]):
        if any(a in {"s3:PutObject", "s3:DeleteObject"} for a in statement["actions"]):
            assert statement["resources"] == ["${each.value.state_lock}"]


def test_application_role_pushes_only_to_its_repository(
    directories: list[hcl.Directory],
) -> None:
    stack = by_name(directories)["modules/stack"]
    (document,) = [
        document
        for body in stack.files.values()
        for kind, name, document in hcl.typed(body, "data")
        if kind == "aws_iam_policy_document" and name == "application"
    ]
    for statement in hcl.as_list(document["statement"]):
        actions = hcl.as_list(statement["actions"])
        if actions == ["ecr:GetAuthorizationToken"]:
            continue  # has no resource-level permissions
        assert "*" not in statement["resources"], statement["sid"]
        if any(action.startswith("ecr:") for action in actions):
            assert statement["resources"] == ["${module.registry.repository_arn}"]
        assert not any(a.startswith(("iam:", "ec2:", "kms:", "s3:")) for a in actions)


# ---------------------------------------------------------------------------------------
# What the issue asks of the cluster, network and registry.


def test_cluster_is_private_api_authenticated_encrypted_and_logged(
    directories: list[hcl.Directory],
) -> None:
    (cluster,) = resources(by_name(directories)["modules/cluster"], "aws_eks_cluster")
    assert cluster["version"] == "${var.kubernetes_version}"
    (access,) = cluster["access_config"]
    assert access["authentication_mode"] == "API"
    assert access["bootstrap_cluster_creator_admin_permissions"] is False
    (vpc,) = cluster["vpc_config"]
    assert vpc["endpoint_private_access"] is True
    (encryption,) = cluster["encryption_config"]
    assert encryption["resources"] == ["secrets"]
    assert cluster["enabled_cluster_log_types"] == "${local.log_types}"


def test_cluster_installs_the_addons_the_store_needs(directories: list[hcl.Directory]) -> None:
    cluster = by_name(directories)["modules/cluster"]
    addon_maps = [
        local
        for body in cluster.files.values()
        for block in body.get("locals", [])
        for name, local in block.items()
        if name in {"addons_before_nodes", "addons_after_nodes"}
    ]
    names = {name for addons in addon_maps for name in addons}
    assert names == {
        "vpc-cni",
        "kube-proxy",
        "coredns",
        "aws-ebs-csi-driver",
        "eks-pod-identity-agent",
    }
    (association,) = resources(cluster, "aws_eks_pod_identity_association")
    assert association["service_account"] == "${local.ebs_csi_service_account}"
    (node_group,) = resources(cluster, "aws_eks_node_group")
    assert node_group["subnet_ids"] == "${var.subnet_ids}"


def test_pinned_kubernetes_versions_are_exact_minors() -> None:
    for env in ("staging", "production"):
        version = hcl.parse_file(hcl.ENVS / env / "terraform.tfvars")["kubernetes_version"]
        assert version.count(".") == 1 and version.startswith("1."), env


@pytest.mark.parametrize(
    ("subnet", "role_tag", "other_tag"),
    [
        ("public", "kubernetes.io/role/elb", "kubernetes.io/role/internal-elb"),
        ("private", "kubernetes.io/role/internal-elb", "kubernetes.io/role/elb"),
    ],
)
def test_subnets_are_tagged_for_load_balancers(
    directories: list[hcl.Directory], subnet: str, role_tag: str, other_tag: str
) -> None:
    network = by_name(directories)["modules/network"]
    (body,) = [
        attributes
        for parsed in network.files.values()
        for kind, name, attributes in hcl.typed(parsed, "resource")
        if kind == "aws_subnet" and name == subnet
    ]
    assert f'"{role_tag}" = "1"' in body["tags"]
    assert f'"{other_tag}"' not in body["tags"]


def test_network_has_flow_logs_and_a_closed_default_security_group(
    directories: list[hcl.Directory],
) -> None:
    network = by_name(directories)["modules/network"]
    (flow_log,) = resources(network, "aws_flow_log")
    assert flow_log["traffic_type"] == "ALL"
    (default_sg,) = resources(network, "aws_default_security_group")
    assert "ingress" not in default_sg and "egress" not in default_sg


def test_registry_is_immutable_scanned_encrypted_and_pruned(
    directories: list[hcl.Directory],
) -> None:
    registry = by_name(directories)["modules/registry"]
    (repository,) = resources(registry, "aws_ecr_repository")
    assert repository["image_tag_mutability"] == "IMMUTABLE"
    assert repository["image_scanning_configuration"][0]["scan_on_push"] is True
    assert repository["encryption_configuration"][0]["encryption_type"] == "KMS"
    assert len(resources(registry, "aws_ecr_lifecycle_policy")) == 1


def test_state_bucket_is_versioned_encrypted_private_and_tls_only(
    directories: list[hcl.Directory],
) -> None:
    bucket = by_name(directories)["modules/state-bucket"]
    (versioning, _) = resources(bucket, "aws_s3_bucket_versioning")
    assert versioning["versioning_configuration"][0]["status"] == "Enabled"
    sse = resources(bucket, "aws_s3_bucket_server_side_encryption_configuration")[0]
    rule = sse["rule"][0]["apply_server_side_encryption_by_default"][0]
    assert rule["sse_algorithm"] == "aws:kms"
    for block in resources(bucket, "aws_s3_bucket_public_access_block"):
        assert all(
            block[flag] is True
            for flag in (
                "block_public_acls",
                "block_public_policy",
                "ignore_public_acls",
                "restrict_public_buckets",
            )
        )
    policies = [
        statement for body in bucket.files.values() for _, statement in hcl.policy_statements(body)
    ]
    insecure = [s for s in policies if s.get("sid") == "DenyInsecureTransport"]
    assert len(insecure) == 2  # state bucket and access-log bucket
    for statement in insecure:
        assert statement["effect"] == "Deny"
        assert statement["condition"][0]["variable"] == "aws:SecureTransport"
        assert statement["condition"][0]["values"] == ["false"]


def test_module_readmes_list_every_input_and_output(directories: list[hcl.Directory]) -> None:
    """The README tables are the module's documented interface; they must not fall behind."""
    missing: list[str] = []
    for directory in directories:
        if directory.path.parent != hcl.MODULES:
            continue
        readme = (directory.path / "README.md").read_text()
        for body in directory.files.values():
            for kind in ("variable", "output"):
                missing.extend(
                    f"{directory.name}: {kind} {name}"
                    for name, _ in hcl.labelled(body, kind)
                    if f"| `{name}` |" not in readme
                )
    assert missing == []
