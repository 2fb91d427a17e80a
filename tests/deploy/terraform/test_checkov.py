"""checkov over deploy/terraform: no failed check, and every skip explained inline."""

from __future__ import annotations

from typing import Any

from tests.deploy.terraform import hcl

# Checks that must have run and passed somewhere in the tree: if checkov stopped parsing a
# module (or the scan saw nothing), these would be missing rather than failed.
EXPECTED_PASSES = {
    "CKV_AWS_58",  # EKS Secrets encryption
    "CKV_AWS_37",  # EKS control-plane logging
    "CKV_AWS_38",  # EKS public endpoint not open to 0.0.0.0/0
    "CKV_AWS_79",  # nodes: IMDSv2 only
    "CKV_AWS_341",  # nodes: metadata hop limit 1
    "CKV_AWS_51",  # ECR immutable tags
    "CKV_AWS_163",  # ECR scan on push
    "CKV_AWS_136",  # ECR KMS encryption
    "CKV_AWS_21",  # S3 versioning
    "CKV2_AWS_6",  # S3 public access block
    "CKV_AWS_7",  # KMS rotation
    "CKV2_AWS_11",  # VPC flow logs
    "CKV2_AWS_12",  # default security group closed
    "CKV_AWS_158",  # log groups KMS-encrypted
    "CKV_AWS_338",  # log retention of at least a year
}


def test_checkov_finds_no_failed_check(checkov_report: dict[str, Any]) -> None:
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range'][0]})"
        for c in checkov_report["results"]["failed_checks"]
    ]
    assert failed == []
    assert checkov_report["results"]["parsing_errors"] == []


def test_checkov_scanned_every_part_of_the_tree(checkov_report: dict[str, Any]) -> None:
    passed = checkov_report["results"]["passed_checks"]
    assert {check["check_id"] for check in passed} >= EXPECTED_PASSES
    scanned = {check["file_path"].lstrip("/").split("/")[0] for check in passed}
    assert {"modules", "bootstrap"} <= scanned


def test_every_skipped_check_carries_a_reason(checkov_report: dict[str, Any]) -> None:
    skipped = checkov_report["results"]["skipped_checks"]
    unexplained = [
        f"{c['check_id']} {c['resource']}"
        for c in skipped
        if len(str(c.get("check_result", {}).get("suppress_comment", "")).strip()) < 30
    ]
    assert unexplained == []


def test_skips_are_few_and_explained_where_they_are_written() -> None:
    """Skips are reviewed one by one; the list must stay short enough to read."""
    skips = [
        (path.relative_to(hcl.TERRAFORM_ROOT), check, reason)
        for path in sorted(hcl.TERRAFORM_ROOT.rglob("*.tf"))
        for check, reason in hcl.skip_comments(path.read_text())
    ]
    assert len(skips) <= 10, skips
    assert all(len(reason.strip()) >= 30 for _, _, reason in skips), skips
