# The OIDC subject a GitHub Actions role trusts, and how the trust policy compares it.
# Kept provider-free so the exact strings are tested offline (tests/subject.tftest.hcl).
#
# AWS only evaluates the sub and aud claims of GitHub's tokens, and the default sub of a
# job with an environment (repo:<owner>/<repo>:environment:<env>) does not name the
# branch. The repository's OIDC subject template is therefore customised to include the
# ref (include_claim_keys = repo, context, ref), which makes the subject of a deployment
#   repo:<owner>/<repo>:environment:<env>:ref:refs/heads/<branch>
# matched exactly (StringEquals, no wildcards). A pull-request run gets
#   repo:<owner>/<repo>:pull_request:ref:refs/pull/<n>/merge
# which the plan-role mode matches for any pull request number; such a role must only
# carry read access, since a pull request runs code nobody has reviewed yet.

locals {
  deployment_subject   = "repo:${var.github_repository}:environment:${coalesce(var.github_environment, "-")}:ref:refs/heads/${coalesce(var.branch, "-")}"
  pull_request_subject = "repo:${var.github_repository}:pull_request:ref:refs/pull/*/merge"
}
