# An IAM role for one GitHub Actions deployment: only an OIDC token issued for this
# repository, this GitHub environment and this branch can assume it.
#
# AWS only evaluates the sub and aud claims of GitHub's tokens, and the default sub of a
# job with an environment (repo:<owner>/<repo>:environment:<env>) does not name the
# branch. The repository's OIDC subject template is therefore customised to include the
# ref (include_claim_keys = repo, context, ref), which makes the subject
#   repo:<owner>/<repo>:environment:<env>:ref:refs/heads/<branch>
# and the trust below matches it exactly (StringEquals, no wildcards).
# docs/infrastructure.md shows the one API call that sets the template.

locals {
  issuer  = "token.actions.githubusercontent.com"
  subject = "repo:${var.github_repository}:environment:${var.github_environment}:ref:refs/heads/${var.branch}"
}

data "aws_iam_policy_document" "trust" {
  statement {
    sid     = "GitHubActionsDeploymentOnly"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.issuer}:sub"
      values   = [local.subject]
    }
  }
}

resource "aws_iam_role" "this" {
  name                 = var.role_name
  description          = "GitHub Actions: ${var.github_repository}, environment ${var.github_environment}, branch ${var.branch}"
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = var.max_session_duration
  tags                 = var.tags
}

resource "aws_iam_role_policy" "this" {
  for_each = var.policies

  name   = each.key
  role   = aws_iam_role.this.id
  policy = each.value
}
