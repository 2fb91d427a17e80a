# What must exist before any environment can be applied by the pipeline, once per AWS
# account: the encrypted, versioned state bucket (with S3-native locking, so no DynamoDB
# table), the GitHub Actions OIDC provider, and for each environment of the account the
# infrastructure role (apply) and the plan role (pull requests), defined in iam.tf.
# Applied by a person with administrator credentials; see docs/infrastructure.md.

module "naming" {
  source = "../modules/naming"

  project     = var.project
  environment = "bootstrap"
  extra_tags  = var.extra_tags
}

module "environment_naming" {
  source   = "../modules/naming"
  for_each = var.environments

  project     = var.project
  environment = each.key
  extra_tags  = var.extra_tags
}

module "state_key" {
  source = "../modules/kms-key"

  alias       = "${var.project}-terraform-state"
  description = "${var.project}: Terraform state objects"
  tags        = module.naming.tags
}

module "state_bucket" {
  source = "../modules/state-bucket"

  bucket_name = var.state_bucket_name
  kms_key_arn = module.state_key.key_arn
  tags        = module.naming.tags
}

# AWS validates GitHub's certificate against its own trusted CAs, so no thumbprint is
# configured.
resource "aws_iam_openid_connect_provider" "github" {
  count = var.create_github_oidc_provider ? 1 : 0

  url            = "https://token.actions.githubusercontent.com"
  client_id_list = ["sts.amazonaws.com"]
  tags           = module.naming.tags
}

data "aws_iam_openid_connect_provider" "github" {
  count = var.create_github_oidc_provider ? 0 : 1

  url = "https://token.actions.githubusercontent.com"
}

locals {
  github_oidc_provider_arn = var.create_github_oidc_provider ? aws_iam_openid_connect_provider.github[0].arn : data.aws_iam_openid_connect_provider.github[0].arn
}
