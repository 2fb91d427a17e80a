# The pipeline's Terraform roles, one pair per environment of the account:
#
# - infrastructure role: assumed by the apply job of the environment's branch and GitHub
#   environment; manages that environment's VPC, EKS, ECR, KMS, logs and its own IAM
#   roles, and reads and writes only that environment's state object;
# - plan role: assumed by pull-request runs; read-only, plus the state lock file.
#
# The application role (image push, cluster access) is created by each environment's
# stack, not here: it has nothing to do with Terraform.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  partition = data.aws_partition.current.partition
  account   = data.aws_caller_identity.current.account_id

  # What the infrastructure role may touch, per environment, by ARN.
  scope = {
    for env, settings in var.environments : env => {
      prefix       = module.environment_naming[env].prefix
      cluster      = module.environment_naming[env].names.cluster
      roles        = "arn:${local.partition}:iam::${local.account}:role/${module.environment_naming[env].iam_name_pattern}"
      own_roles    = [for name in [module.environment_naming[env].names.infrastructure_role, module.environment_naming[env].names.plan_role] : "arn:${local.partition}:iam::${local.account}:role/${name}"]
      eks          = "arn:${local.partition}:eks:${var.region}:${local.account}"
      logs         = "arn:${local.partition}:logs:${var.region}:${local.account}:log-group"
      repositories = "arn:${local.partition}:ecr:${var.region}:${local.account}:repository/${var.project}*"
      state_object = "${module.state_bucket.bucket_arn}/${settings.state_key}"
      state_lock   = "${module.state_bucket.bucket_arn}/${settings.state_key}.tflock"
      state_key    = settings.state_key
    }
  }

  # The AWS managed policies the environment's roles are built from; the infrastructure
  # role may attach these and nothing else (no AdministratorAccess by the back door).
  attachable_policies = [for name in [
    "AmazonEKSClusterPolicy",
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryPullOnly",
    "service-role/AmazonEBSCSIDriverPolicy",
  ] : "arn:${local.partition}:iam::aws:policy/${name}"]
}

# ---------------------------------------------------------------------------------------
# State access shared by both roles of an environment.

data "aws_iam_policy_document" "state" {
  for_each = local.scope

  statement {
    sid       = "ListOwnStateOnly"
    actions   = ["s3:ListBucket"]
    resources = [module.state_bucket.bucket_arn]

    condition {
      test     = "StringEquals"
      variable = "s3:prefix"
      values   = [each.value.state_key, "${each.value.state_key}.tflock"]
    }
  }

  statement {
    sid       = "LockOwnState"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = [each.value.state_lock]
  }

  statement {
    sid       = "UseStateKey"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [module.state_key.key_arn]
  }
}

# ---------------------------------------------------------------------------------------
# Infrastructure role.

data "aws_iam_policy_document" "infrastructure" {
  for_each = local.scope

  statement {
    sid       = "ReadWriteStateObject"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = [each.value.state_object]
  }

  statement {
    sid       = "NetworkInTheEnvironmentRegion"
    actions   = ["ec2:*"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestedRegion"
      values   = [var.region]
    }
  }

  statement {
    sid     = "ThisEnvironmentsCluster"
    actions = ["eks:*"]
    resources = [
      "${each.value.eks}:cluster/${each.value.cluster}",
      "${each.value.eks}:nodegroup/${each.value.cluster}/*",
      "${each.value.eks}:addon/${each.value.cluster}/*",
      "${each.value.eks}:access-entry/${each.value.cluster}/*",
      "${each.value.eks}:podidentityassociation/${each.value.cluster}/*",
    ]
  }

  statement {
    sid = "EksCatalogue"
    # Add-on versions and access policies are global catalogues without resource ARNs.
    actions = [
      "eks:DescribeAddonVersions",
      "eks:DescribeAddonConfiguration",
      "eks:ListAccessPolicies",
      "eks:ListClusters",
    ]
    resources = ["*"]
  }

  statement {
    sid     = "ThisEnvironmentsLogGroups"
    actions = ["logs:*"]
    resources = [
      "${each.value.logs}:/aws/vpc/${each.value.prefix}/*",
      "${each.value.logs}:/aws/eks/${each.value.cluster}/*",
    ]
  }

  statement {
    sid       = "FindLogGroups"
    actions   = ["logs:DescribeLogGroups"]
    resources = ["*"]
  }

  statement {
    sid       = "ProjectRepositories"
    actions   = ["ecr:*"]
    resources = [each.value.repositories]
  }

  statement {
    sid       = "CreateEnvironmentKeys"
    actions   = ["kms:CreateKey", "kms:TagResource"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/Environment"
      values   = [each.key]
    }
  }

  statement {
    sid       = "ManageEnvironmentKeys"
    actions   = ["kms:*"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/Environment"
      values   = [each.key]
    }
  }

  statement {
    sid       = "EnvironmentKeyAliases"
    actions   = ["kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"]
    resources = ["arn:${local.partition}:kms:${var.region}:${local.account}:alias/${each.value.prefix}-*"]
  }

  statement {
    sid       = "ListKeys"
    actions   = ["kms:ListAliases", "kms:ListKeys"]
    resources = ["*"]
  }

  statement {
    sid = "EnvironmentRoles"
    actions = [
      "iam:CreateRole",
      "iam:DeleteRole",
      "iam:GetRole",
      "iam:UpdateRole",
      "iam:UpdateRoleDescription",
      "iam:UpdateAssumeRolePolicy",
      "iam:TagRole",
      "iam:UntagRole",
      "iam:ListRoleTags",
      "iam:PutRolePolicy",
      "iam:GetRolePolicy",
      "iam:DeleteRolePolicy",
      "iam:ListRolePolicies",
      "iam:ListAttachedRolePolicies",
      "iam:ListInstanceProfilesForRole",
      "iam:PassRole",
    ]
    resources = [each.value.roles]
  }

  statement {
    sid       = "AttachOnlyTheManagedPoliciesTheEnvironmentUses"
    actions   = ["iam:AttachRolePolicy", "iam:DetachRolePolicy"]
    resources = [each.value.roles]

    condition {
      test     = "ArnEquals"
      variable = "iam:PolicyARN"
      values   = local.attachable_policies
    }
  }

  statement {
    sid       = "ReadManagedPolicies"
    actions   = ["iam:GetPolicy", "iam:GetPolicyVersion"]
    resources = local.attachable_policies
  }

  statement {
    sid       = "ServiceLinkedRolesOfEks"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["arn:${local.partition}:iam::${local.account}:role/aws-service-role/*"]

    condition {
      test     = "StringEquals"
      variable = "iam:AWSServiceName"
      values = [
        "eks.amazonaws.com",
        "eks-nodegroup.amazonaws.com",
        "autoscaling.amazonaws.com",
        "elasticloadbalancing.amazonaws.com",
      ]
    }
  }

  statement {
    sid       = "FindGitHubOidcProvider"
    actions   = ["iam:GetOpenIDConnectProvider"]
    resources = [local.github_oidc_provider_arn]
  }

  statement {
    sid       = "ListOidcProviders"
    actions   = ["iam:ListOpenIDConnectProviders"]
    resources = ["*"]
  }

  statement {
    sid       = "NeverChangeThePipelinesOwnRoles"
    effect    = "Deny"
    actions   = ["iam:*"]
    resources = each.value.own_roles
  }

  statement {
    sid       = "NeverManageTheStateKey"
    effect    = "Deny"
    resources = [module.state_key.key_arn]
    not_actions = [
      "kms:Decrypt",
      "kms:Encrypt",
      "kms:GenerateDataKey",
      "kms:DescribeKey",
    ]
  }
}

module "infrastructure_role" {
  source   = "../modules/ci-identity"
  for_each = var.environments

  role_name          = module.environment_naming[each.key].names.infrastructure_role
  oidc_provider_arn  = local.github_oidc_provider_arn
  github_repository  = var.github_repository
  github_environment = each.key
  branch             = each.value.branch
  tags               = module.environment_naming[each.key].tags

  policies = {
    terraform-state = data.aws_iam_policy_document.state[each.key].json
    infrastructure  = data.aws_iam_policy_document.infrastructure[each.key].json
  }
}

# ---------------------------------------------------------------------------------------
# Plan role: read what Terraform refreshes, read the state, take the state lock.

data "aws_iam_policy_document" "plan" {
  for_each = local.scope

  statement {
    sid       = "ReadStateObject"
    actions   = ["s3:GetObject"]
    resources = [each.value.state_object]
  }

  statement {
    sid = "RefreshEnvironmentResources"
    actions = [
      "ec2:Describe*",
      "ec2:GetEbsEncryptionByDefault",
      "ec2:GetEbsDefaultKmsKeyId",
      "eks:Describe*",
      "eks:List*",
      "kms:DescribeKey",
      "kms:GetKeyPolicy",
      "kms:GetKeyRotationStatus",
      "kms:ListAliases",
      "kms:ListKeys",
      "kms:ListResourceTags",
      "logs:DescribeLogGroups",
      "logs:ListTagsForResource",
      "logs:ListTagsLogGroup",
      "ecr:DescribeRepositories",
      "ecr:GetLifecyclePolicy",
      "ecr:ListTagsForResource",
    ]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestedRegion"
      values   = [var.region]
    }
  }

  statement {
    sid = "RefreshEnvironmentRoles"
    actions = [
      "iam:GetRole",
      "iam:GetRolePolicy",
      "iam:ListRolePolicies",
      "iam:ListAttachedRolePolicies",
    ]
    resources = [each.value.roles]
  }

  statement {
    sid       = "FindGitHubOidcProvider"
    actions   = ["iam:GetOpenIDConnectProvider"]
    resources = [local.github_oidc_provider_arn]
  }

  statement {
    sid = "ListOidcProviders"
    # Listing has no resource-level permissions.
    actions   = ["iam:ListOpenIDConnectProviders"]
    resources = ["*"]
  }
}

module "plan_role" {
  source   = "../modules/ci-identity"
  for_each = var.environments

  role_name         = module.environment_naming[each.key].names.plan_role
  oidc_provider_arn = local.github_oidc_provider_arn
  github_repository = var.github_repository
  pull_request_plan = true
  tags              = module.environment_naming[each.key].tags

  policies = {
    terraform-state = data.aws_iam_policy_document.state[each.key].json
    plan            = data.aws_iam_policy_document.plan[each.key].json
  }
}
