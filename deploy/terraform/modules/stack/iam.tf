# The application pipeline's role: push the store's image to this environment's ECR
# repository and reach the cluster (eks:DescribeCluster here; Kubernetes rights come from
# the namespaced access entry in main.tf). It cannot change infrastructure; that is the
# separate infrastructure role created by the bootstrap root.

data "aws_iam_policy_document" "application" {
  statement {
    sid = "EcrLogin"
    # GetAuthorizationToken has no resource-level permissions; the token is useless
    # without the repository permissions below.
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "PushThisRepositoryOnly"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:InitiateLayerUpload",
      "ecr:UploadLayerPart",
      "ecr:CompleteLayerUpload",
      "ecr:PutImage",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
      "ecr:DescribeImages",
      "ecr:DescribeImageScanFindings",
    ]
    resources = [module.registry.repository_arn]
  }

  statement {
    sid       = "FindTheCluster"
    actions   = ["eks:DescribeCluster"]
    resources = [local.cluster_arn]
  }
}

module "application_role" {
  source = "../ci-identity"

  role_name          = local.names.application_role
  oidc_provider_arn  = data.aws_iam_openid_connect_provider.github.arn
  github_repository  = var.github_repository
  github_environment = var.environment
  branch             = var.deploy_branch
  policies           = { deploy-application = data.aws_iam_policy_document.application.json }
  tags               = local.tags
}
