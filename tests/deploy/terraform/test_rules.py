"""The review rules catch what they are meant to catch (on HCL written to break them)."""

from __future__ import annotations

from pathlib import Path

from tests.deploy.terraform import hcl


def directory_of(tmp_path: Path, text: str) -> hcl.Directory:
    (tmp_path / "main.tf").write_text(text)
    return hcl.Directory(tmp_path, {"main.tf": hcl.parse_text(text)})


def test_variable_rule_reports_missing_type_and_description() -> None:
    body = hcl.parse_text(
        'variable "a" {\n  type = string\n  description = "ok"\n}\n'
        'variable "b" {\n  description = "no type"\n}\n'
        'variable "c" {\n  type = number\n  description = ""\n}\n'
    )
    assert hcl.variable_problems(body, "x") == [
        "x: variable b has no type",
        "x: variable c has no description",
    ]


def test_output_rule_reports_missing_description() -> None:
    body = hcl.parse_text('output "a" {\n  value = 1\n}\n')
    assert hcl.output_problems(body, "x") == ["x: output a has no description"]


def test_star_rule_reports_star_on_star_and_not_actions_but_not_denies() -> None:
    body = hcl.parse_text(
        """
data "aws_iam_policy_document" "bad" {
  statement {
    actions   = ["*"]
    resources = ["*"]
  }
}
data "aws_iam_policy_document" "everything_but" {
  statement {
    not_actions = ["iam:*"]
    resources   = ["*"]
  }
}
data "aws_iam_policy_document" "dynamic_bad" {
  dynamic "statement" {
    for_each = [1]
    content {
      actions   = ["*"]
      resources = ["*"]
    }
  }
}
data "aws_iam_policy_document" "fine" {
  statement {
    actions   = ["s3:GetObject"]
    resources = ["*"]
  }
  statement {
    effect    = "Deny"
    actions   = ["*"]
    resources = ["*"]
  }
}
"""
    )
    assert hcl.star_on_star_problems(body, "x") == [
        "x: bad allows action * on resource *",
        "x: everything_but allows everything but a list (not_actions)",
        "x: dynamic_bad allows action * on resource *",
    ]


def test_source_rule_accepts_local_paths_and_exact_versions(tmp_path: Path) -> None:
    (tmp_path / "child").mkdir()
    directory = directory_of(
        tmp_path,
        """
module "local" {
  source = "./child"
}
module "registry" {
  source  = "terraform-aws-modules/vpc/aws"
  version = "6.0.1"
}
module "git" {
  source = "git::https://github.com/example/mod.git?ref=v1.2.3"
}
""",
    )
    assert hcl.module_source_problems(directory.files["main.tf"], tmp_path, "x") == []


def test_source_rule_rejects_ranges_missing_paths_and_branches(tmp_path: Path) -> None:
    directory = directory_of(
        tmp_path,
        """
module "missing" {
  source = "../nowhere"
}
module "range" {
  source  = "terraform-aws-modules/vpc/aws"
  version = "~> 6.0"
}
module "branch" {
  source = "git::https://github.com/example/mod.git?ref=main"
}
""",
    )
    assert hcl.module_source_problems(directory.files["main.tf"], tmp_path, "x") == [
        "x: module missing points at missing ../nowhere",
        "x: module range (terraform-aws-modules/vpc/aws) needs an exact version",
        "x: module branch git source lacks ref=<tag|sha>",
    ]


def test_version_rule_requires_bounds_and_pinned_providers(tmp_path: Path) -> None:
    directory = directory_of(
        tmp_path,
        """
terraform {
  required_version = ">= 1.10.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }
}
resource "aws_s3_bucket" "a" {}
data "tls_certificate" "b" {}
""",
    )
    problems = hcl.version_constraint_problems(directory)
    assert any("required_version" in p and "upper bound" in p for p in problems)
    assert any("provider aws needs a bounded version" in p for p in problems)
    assert any("uses provider tls without required_providers" in p for p in problems)


def test_version_rule_accepts_a_bounded_module(tmp_path: Path) -> None:
    directory = directory_of(
        tmp_path,
        """
terraform {
  required_version = ">= 1.10.0, < 2.0.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0.0, < 7.0.0"
    }
  }
}
resource "aws_s3_bucket" "a" {}
""",
    )
    assert hcl.version_constraint_problems(directory) == []


def test_skip_comments_are_read_with_their_reason() -> None:
    text = "  #checkov:skip=CKV_AWS_144:State is versioned.\n  #checkov:skip=CKV2_AWS_62\n"
    assert hcl.skip_comments(text) == [("CKV_AWS_144", "State is versioned."), ("CKV2_AWS_62", "")]
