"""The Dagger wiring of the delivery stages, read from their engine-free plans.

Each function builds its pipeline from the SDK's lazy objects; ``kvstore_ci.dryrun`` reads
the graph without an engine. What a reviewer checks is asserted here: images pinned by
digest, caches where they save time, credentials only as secrets, the exact terraform,
helm, kubectl and promotion commands (``--atomic``, the plan file handed from plan to
apply), and that nothing that changes the world can be replayed from a cache.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator

import dagger
import pytest
import yaml
from kvstore_ci import KvstoreCi, images, kube, terraform
from kvstore_ci.dryrun import plan_function
from kvstore_ci.environments import load
from kvstore_ci.executor import PLACEHOLDER_DIGEST
from kvstore_ci.functions.base import RUN_ID_VARIABLE
from kvstore_ci.functions.kubernetes import split_reference
from kvstore_ci.functions.monitoring import monitoring_charts
from kvstore_ci.plan import Node, Op, StagePlan, functions_of
from kvstore_ci.reports import StageFailed

from tests.tooling import ROOT

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
IMAGE = "111111111111.dkr.ecr.eu-west-1.amazonaws.com/kvstore@sha256:" + "ab" * 32
COMMIT = "c0ffee" * 6 + "abcd"

DELIVERY = (
    "terraform-plan",
    "terraform-apply",
    "kubeconfig",
    "helm-upgrade",
    "promote",
    "argocd-sync",
    "deploy",
    "rollback",
    "deploy-monitoring",
)
# Secret arguments given as secret URIs, so a leak into a plain argument would show.
SECRETS = {
    "aws-access-key-id": "env://AWS_ACCESS_KEY_ID",
    "aws-secret-access-key": "env://AWS_SECRET_ACCESS_KEY",
    "aws-session-token": "env://AWS_SESSION_TOKEN",
    "git-token": "env://GIT_TOKEN",
    "argocd-token": "env://ARGOCD_AUTH_TOKEN",
    "token": "env://ARGOCD_AUTH_TOKEN",
    "kubeconfig": "file://kubeconfig",
}


# The optional secrets the gitops strategies need (a plan, like a call, fails without them).
TOKENS = {"git_token": "env://GIT_TOKEN", "argocd_token": "env://ARGOCD_AUTH_TOKEN"}
AWS = {
    "aws_access_key_id": "env://AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "env://AWS_SECRET_ACCESS_KEY",
}


def plan(name: str, **flags: str) -> list[StagePlan]:
    return plan_function(KvstoreCi, name, {k.replace("_", "-"): v for k, v in flags.items()})


def stage(plans: list[StagePlan], name: str) -> StagePlan:
    return next(p for p in plans if p.name == name)


def result(p: StagePlan) -> Node:
    assert p.result is not None, f"stage {p.name} has no lazy result"
    return p.result


def execs(node: Node) -> list[list[str]]:
    return [
        [str(a) for a in typing.cast(list[str], op.args["args"])] for op in node.find("withExec")
    ]


def images_of(node: Node) -> list[str]:
    return [str(op.args["address"]) for op in node.walk() if op.name == "from"]


def every_op(plans: list[StagePlan]) -> Iterator[Op]:
    for p in plans:
        if p.result is not None:
            yield from p.result.walk()
        for node in p.inputs.values():
            yield from node.walk()


def strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)


# --- the functions as registered -----------------------------------------------------------


def test_deploy_type_functions_are_never_cached() -> None:
    functions = functions_of(KvstoreCi)
    for name in DELIVERY:
        assert functions[name].cache == "never", name
    assert functions["affected"].cache is None, "affected is a pure function of its inputs"


def test_every_argument_is_documented_and_credentials_are_secrets() -> None:
    functions = functions_of(KvstoreCi)
    for name in (*DELIVERY, "affected"):
        for arg in functions[name].args:
            assert arg.doc, f"{name} --{arg.name} has no Doc"
            if any(word in arg.name for word in ("token", "key", "kubeconfig")):
                kinds = typing.get_args(arg.type) or (arg.type,)
                assert dagger.Secret in kinds, f"{name} --{arg.name} is not a Secret"


def test_plans_pin_every_image_and_pass_secrets_only_as_secrets() -> None:
    cases: dict[str, dict[str, str]] = {
        "terraform-plan": {"env": "staging"},
        "terraform-apply": {"env": "production"},
        "kubeconfig": {"env": "staging"},
        "helm-upgrade": {"env": "staging", "image": IMAGE},
        "promote": {"env": "staging", "image": IMAGE, "source_revision": COMMIT},
        "argocd-sync": {"env": "staging", "revision": COMMIT},
        "deploy": {"env": "staging", "revision": COMMIT},
        "rollback": {"env": "production"},
        "deploy-monitoring": {"env": "staging"},
    }
    functions = functions_of(KvstoreCi)
    for name, flags in cases.items():
        known = {a.name for a in functions[name].args}
        given = {k: v for k, v in SECRETS.items() if k in known}
        plans = plan(name, **flags, **given)
        ops = list(every_op(plans))
        for op in ops:
            if op.name == "from":
                assert DIGEST.search(str(op.args["address"])), (name, op.args["address"])
            secret_args = [
                v for v in op.args.values() if isinstance(v, Node) and v.type == "Secret"
            ]
            if secret_args:
                assert op.name in {"withSecretVariable", "withMountedSecret", "withRegistryAuth"}, (
                    name,
                    op.name,
                )
            if op.on == "Query" and op.name == "secret":
                continue  # the secret's own reference (its URI), not a use of its value
            for text in strings(dict(op.args)):
                assert "env://" not in text and "file://" not in text, (name, op.name, text)


def test_mirror_reaches_every_delivery_image() -> None:
    for name, flags in (
        ("helm-upgrade", {"env": "staging", "image": IMAGE}),
        (
            "deploy",
            {
                "env": "staging",
                "revision": COMMIT,
                "git-token": "env://G",
                "argocd-token": "env://A",
            },
        ),
    ):
        plans = plan_function(KvstoreCi, name, flags, {"mirror": "mirror.internal:5000/hub"})
        addresses = [str(op.args["address"]) for op in every_op(plans) if op.name == "from"]
        assert addresses
        for address in addresses:
            assert address.startswith("mirror.internal:5000/hub/"), address
            assert DIGEST.search(address)


def test_side_effects_carry_a_fresh_run_id() -> None:
    """Every deploy-type exec follows the cache buster, so the engine cannot replay it."""
    plans = plan("deploy", env="staging", revision=COMMIT, **TOKENS)
    for name in ("promote", "argocd-sync", "smoke"):
        ops = [
            op.name if op.name != "withEnvVariable" else str(op.args["name"])
            for op in result(stage(plans, name)).ops
        ]
        buster = ops.index(RUN_ID_VARIABLE)
        last_install = max((i for i, o in enumerate(ops) if o == "withExec"), default=-1)
        assert buster < last_install, name
    for name in ("terraform-plan", "terraform-apply"):
        steps = [
            str(op.args.get("name")) if op.name == "withEnvVariable" else op.name
            for op in result(plan(name, env="staging")[-1]).ops
        ]
        assert steps.index(RUN_ID_VARIABLE) < steps.index("withExec"), name


# --- terraform -----------------------------------------------------------------------------


def test_terraform_plan_commands_cache_and_credentials() -> None:
    p = stage(plan("terraform-plan", env="staging"), "terraform-plan")
    node = result(p)
    env = load(ROOT, "staging")
    assert images_of(node) == [images.TERRAFORM]
    assert execs(node) == [terraform.init_args(env), terraform.plan_args("staging")]
    assert execs(node)[1][-2:] == ["-detailed-exitcode", "-out=staging.tfplan"]
    assert node.find("withExec")[1].args["expect"] == "ANY", "exit 2 (changes) is not a failure"
    (cache,) = node.find("withMountedCache")
    assert cache.args["path"] == terraform.PLUGIN_CACHE_DIR
    variables = {str(op.args["name"]): op.args["value"] for op in node.find("withEnvVariable")}
    assert variables["TF_PLUGIN_CACHE_DIR"] == terraform.PLUGIN_CACHE_DIR
    assert variables["AWS_REGION"] == "eu-west-1"
    secret_names = [op.args["name"] for op in node.find("withSecretVariable")]
    assert secret_names == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    (workdir,) = node.find("withWorkdir")
    assert workdir.args["path"] == "/src/deploy/terraform/envs/staging"
    assert p.actions[0].startswith("exit-code: 0 no changes, 2 changes")


def test_session_token_is_passed_when_given() -> None:
    plans = plan("terraform-plan", env="staging", aws_session_token="env://AWS_SESSION_TOKEN")
    p = stage(plans, "terraform-plan")
    names = [op.args["name"] for op in result(p).find("withSecretVariable")]
    assert names == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]


def test_terraform_apply_without_a_plan_file_applies_the_plan_it_makes() -> None:
    plans = plan("terraform-apply", env="staging")
    assert [p.name for p in plans] == [
        "terraform-plan",
        "terraform-show",
        "plan-file",
        "terraform-apply",
    ]
    assert plans[2].actions == ("name: must be staging.tfplan",)
    made, applied = result(plans[0]), result(plans[3])
    (handed,) = applied.find("withFile")
    source = handed.args["source"]
    assert isinstance(source, Node)
    assert source.ops[:-1] == made.ops, "the file comes from that very plan run"
    assert source.ops[-1].name == "file" and source.ops[-1].args["path"] == "staging.tfplan"
    assert execs(applied)[-1] == terraform.apply_args("staging")


def test_terraform_apply_applies_exactly_the_plan_file() -> None:
    plans = plan("terraform-apply", env="production", plan="production.tfplan")
    assert [p.name for p in plans] == ["plan-file", "terraform-apply"]
    node = result(plans[1])
    (handed,) = node.find("withFile")
    assert handed.args["path"] == "production.tfplan"
    source = handed.args["source"]
    assert isinstance(source, Node) and source.ops[-1].args["path"] == "production.tfplan"
    commands = execs(node)
    assert commands[-1] == terraform.apply_args("production")
    assert commands[-1][-1] == "production.tfplan"
    assert not any(c[1] == "plan" for c in commands), "apply never re-plans"
    assert "-auto-approve" not in commands[-1]
    assert node.find("withExec")[-1].args["expect"] == "ANY", "a stale plan is explained"


# --- cluster access and helm --------------------------------------------------------------


def test_kubeconfig_is_made_by_the_module_with_secret_credentials() -> None:
    p, returned = plan("kubeconfig", env="production")
    assert returned.name == "returned"
    (made,) = result(returned).find("setSecret")
    assert made.args == {"name": "kubeconfig-production-<run-id>"}, "its value stays out"
    assert p.result is None
    assert set(p.inputs) == {"aws-access-key-id", "aws-secret-access-key"}
    assert all(node.type == "Secret" for node in p.inputs.values())
    assert "sts presign GetCallerIdentity, header x-k8s-aws-id: kvstore-production" in p.actions


def test_helm_upgrade_is_atomic_pins_the_digest_then_tests() -> None:
    (p,) = plan("helm-upgrade", env="staging", image=IMAGE, timeout="7m")
    node = result(p)
    env = load(ROOT, "staging")
    repository, digest = IMAGE.split("@")
    assert images_of(node) == [images.HELM]
    assert execs(node) == [
        kube.helm_upgrade_args(env, repository, digest, "7m"),
        kube.helm_test_args(env),
        kube.helm_status_args(env),
    ]
    upgrade = execs(node)[0]
    for flag in ("--install", "--atomic", "--wait"):
        assert flag in upgrade
    assert upgrade[upgrade.index("--timeout") + 1] == "7m"
    assert f"image.digest={digest}" in upgrade
    (mounted,) = node.find("withMountedSecret")
    assert mounted.args["path"] == "/run/secrets/kubeconfig"
    assert [op.args["path"] for op in node.find("withMountedCache")] == ["/cache/helm"]


def test_bare_digest_uses_the_environment_repository() -> None:
    env = load(ROOT, "production")
    digest = "sha256:" + "cd" * 32
    assert split_reference(digest, env) == (env.image_repository, digest)
    tagged = f"{env.image_repository}:{COMMIT}@{digest}"
    assert split_reference(tagged, env) == (env.image_repository, digest)
    with pytest.raises(StageFailed, match="not pinned by digest"):
        split_reference("kvstore:latest", env)


# --- promotion, Argo CD, deploy, rollback --------------------------------------------------


def test_promote_runs_the_promotion_command_with_the_token_as_secret() -> None:
    (p,) = plan("promote", env="production", image=IMAGE, source_revision=COMMIT)
    node = result(p)
    assert images_of(node) == [images.PYTHON_GIT]
    assert execs(node)[-1] == [
        "python",
        "-m",
        "kvstore_ci",
        "promote",
        "--env",
        "production",
        "--image",
        IMAGE,
        "--source-revision",
        COMMIT,
        "--remote",
        "https://github.com/example-org/kvstore",
        "--branch",
        "main",
        "--workdir",
        "/tmp/kvstore-promotion",
    ]
    assert [op.args["name"] for op in node.find("withSecretVariable")] == ["GIT_TOKEN"]
    assert execs(node)[0][:2] == ["pip", "install"]
    assert node.find("withMountedCache")[0].args["path"] == "/root/.cache/pip"


def test_argocd_sync_command() -> None:
    (p,) = plan("argocd-sync", env="staging", revision=COMMIT, timeout="120")
    node = result(p)
    assert execs(node)[-1] == [
        "python",
        "-m",
        "kvstore_ci",
        "argocd-sync",
        "--server",
        "https://argocd.staging.kvstore.internal",
        "--application",
        "kvstore-staging",
        "--revision",
        COMMIT,
        "--timeout",
        "120",
    ]
    assert [op.args["name"] for op in node.find("withSecretVariable")] == ["ARGOCD_AUTH_TOKEN"]


def test_deploy_chains_the_stages_in_order() -> None:
    gitops = plan("deploy", env="staging", revision=COMMIT, **TOKENS)
    assert [p.name for p in gitops] == [
        "build",
        "ecr-login",
        "publish",
        "promote",
        "argocd-sync",
        "kubeconfig",
        "smoke",
    ]
    helm = plan("deploy", env="staging", revision=COMMIT, strategy="helm")
    assert [p.name for p in helm] == [
        "build",
        "ecr-login",
        "publish",
        "kubeconfig",
        "helm-upgrade",
        "kubeconfig",
        "smoke",
    ]
    promote = execs(result(stage(gitops, "promote")))[-1]
    assert promote[promote.index("--image") + 1].endswith(f"@{PLACEHOLDER_DIGEST}")
    smoke = execs(result(stage(gitops, "smoke")))
    env = load(ROOT, "staging")
    assert smoke[0] == kube.rollout_args(env, "600s")
    assert smoke[1][:9] == kube.smoke_args(env, "<run-id>")[:9]
    assert images_of(result(stage(gitops, "smoke"))) == [images.KUBECTL]


def test_rollback_reverts_in_git_then_waits_for_argo_cd() -> None:
    plans = plan("rollback", env="staging", **TOKENS)
    assert [p.name for p in plans] == ["rollback", "argocd-sync"]
    assert execs(result(plans[0]))[-1][:6] == [
        "python",
        "-m",
        "kvstore_ci",
        "rollback",
        "--env",
        "staging",
    ]
    helm = stage(plan("rollback", env="staging", strategy="helm", **AWS), "helm-rollback")
    assert execs(result(helm))[0][:4] == ["helm", "rollback", "kvstore", "0"]
    plans = plan("rollback", env="staging", strategy="helm", to="3", **AWS)
    to_three = stage(plans, "helm-rollback")
    assert execs(result(to_three))[0][3] == "3"
    with pytest.raises(StageFailed, match="'previous' or a revision number"):
        plan("rollback", env="staging", strategy="helm", to="sha256:abc", **AWS)


# --- monitoring and change detection -------------------------------------------------------


def test_monitoring_syncs_the_applications_in_wave_order() -> None:
    plans = plan("deploy-monitoring", env="production", argocd_token="env://ARGOCD_AUTH_TOKEN")
    applications = [execs(result(p))[-1][7] for p in plans]
    assert applications == list(kube.MONITORING_APPLICATIONS)


def test_monitoring_with_helm_installs_the_pinned_charts() -> None:
    argocd = yaml.safe_load((ROOT / "deploy/kubernetes/argocd/values.yaml").read_text())
    pins = argocd["monitoring"]["charts"]
    charts = monitoring_charts((ROOT / "deploy/kubernetes/argocd/values.yaml").read_text())
    assert [c.version for c in charts] == [
        pins["kubePrometheusStack"]["version"],
        pins["otelCollector"]["version"],
        pins["jaeger"]["version"],
    ]
    plans = plan("deploy-monitoring", env="staging", strategy="helm", **AWS)
    assert [p.name for p in plans] == ["kubeconfig", "monitoring-charts", "monitoring-manifests"]
    given = plan("deploy-monitoring", env="staging", strategy="helm", kubeconfig="file://k")
    assert [p.name for p in given] == ["monitoring-charts", "monitoring-manifests"]
    plans = plans[1:]
    upgrades = execs(result(plans[0]))
    for command, chart in zip(upgrades, charts, strict=True):
        assert command[:4] == ["helm", "upgrade", chart.release, chart.chart]
        assert command[command.index("--version") + 1] == chart.version
        assert "--atomic" in command
    assert execs(result(plans[1])) == [
        [
            "kubectl",
            "apply",
            "--server-side",
            "--namespace",
            "monitoring",
            "--filename",
            "/manifests",
        ],
    ]
    for _key, values in kube.MONITORING_CHARTS.values():
        assert (ROOT / "deploy/kubernetes/monitoring" / values).is_file(), values


def test_affected_sees_the_git_history() -> None:
    (p,) = plan("affected", base="origin/staging", head="abc123")
    node = result(p)
    assert execs(node)[-1] == [
        "python",
        "-m",
        "kvstore_ci",
        "affected",
        "--repo",
        "/src",
        "--base",
        "origin/staging",
        "--head",
        "abc123",
        "--json",
    ]
    host = next(op for op in node.walk() if op.on == "Host" and op.name == "directory")
    assert ".git" not in typing.cast(list[str], host.args["exclude"])
