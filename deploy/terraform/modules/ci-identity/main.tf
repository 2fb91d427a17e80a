# An IAM role for GitHub Actions that only an OIDC token for this repository and this
# environment and branch (or, for a read-only plan role, a pull request of the repository)
# can assume. The subject string and its comparison come from the github-oidc-subject
# module, which explains the subject format and is tested offline.

locals {
  issuer = "token.actions.githubusercontent.com"
}

module "subject" {
  source = "../github-oidc-subject"

  github_repository  = var.github_repository
  github_environment = var.github_environment
  branch             = var.branch
  pull_request_plan  = var.pull_request_plan
}

data "aws_iam_policy_document" "trust" {
  statement {
    sid     = "GitHubActionsOfThisRepositoryOnly"
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
      test     = module.subject.condition_test
      variable = "${local.issuer}:sub"
      values   = [module.subject.subject]
    }
  }
}

resource "aws_iam_role" "this" {
  name                 = var.role_name
  description          = module.subject.description
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
