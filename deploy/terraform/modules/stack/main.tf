# One environment: network, EKS cluster, image registry and the application pipeline's
# role. The environment roots under envs/ are thin callers of this module, so staging and
# production are built from the same code and differ only in their inputs.

module "naming" {
  source = "../naming"

  project     = var.project
  environment = var.environment
  extra_tags  = var.extra_tags
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

# Read only to check the configured zones exist in the region before anything is built.
data "aws_availability_zones" "selected" {
  state = "available"

  filter {
    name   = "zone-name"
    values = var.availability_zones
  }

  lifecycle {
    postcondition {
      condition     = length(self.names) == length(var.availability_zones)
      error_message = "Not every zone in availability_zones exists and is available in this region."
    }
  }
}

# Created by the bootstrap root, once per account.
data "aws_iam_openid_connect_provider" "github" {
  url = "https://token.actions.githubusercontent.com"
}

locals {
  names = module.naming.names
  tags  = module.naming.tags

  cluster_arn = "arn:${data.aws_partition.current.partition}:eks:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:cluster/${local.names.cluster}"
}

module "logs_key" {
  source = "../kms-key"

  alias                 = "${module.naming.prefix}-logs"
  description           = "${module.naming.prefix}: VPC flow logs and EKS control-plane logs"
  allow_cloudwatch_logs = true
  tags                  = local.tags
}

module "secrets_key" {
  source = "../kms-key"

  alias       = "${module.naming.prefix}-eks-secrets"
  description = "${module.naming.prefix}: envelope encryption of Kubernetes Secrets"
  tags        = local.tags
}

module "registry_key" {
  source = "../kms-key"

  alias       = "${module.naming.prefix}-ecr"
  description = "${module.naming.prefix}: images in ECR"
  tags        = local.tags
}

module "network" {
  source = "../network"

  name                     = module.naming.prefix
  vpc_cidr                 = var.vpc_cidr
  availability_zones       = var.availability_zones
  single_nat_gateway       = var.single_nat_gateway
  cluster_name             = local.names.cluster
  flow_logs_role_name      = local.names.flow_logs_role
  flow_logs_retention_days = var.flow_logs_retention_days
  logs_kms_key_arn         = module.logs_key.key_arn
  tags                     = local.tags
}

module "cluster" {
  source = "../cluster"

  cluster_name           = local.names.cluster
  kubernetes_version     = var.kubernetes_version
  vpc_id                 = module.network.vpc_id
  subnet_ids             = module.network.private_subnet_ids
  endpoint_public_access = var.endpoint_public_access
  public_access_cidrs    = var.public_access_cidrs
  secrets_kms_key_arn    = module.secrets_key.key_arn
  logs_kms_key_arn       = module.logs_key.key_arn
  log_retention_days     = var.control_plane_log_retention_days
  addon_versions         = var.addon_versions
  admin_principal_arns   = var.cluster_admin_principal_arns

  role_names = {
    cluster = local.names.cluster_role
    node    = local.names.node_role
    ebs_csi = local.names.ebs_csi_role
  }

  node_group = merge(var.node_group, { name = local.names.node_group })

  access_entries = {
    ci-application = {
      principal_arn = module.application_role.role_arn
      policy_name   = "AmazonEKSEditPolicy"
      namespaces    = var.application_namespaces
    }
  }

  tags = local.tags
}

module "registry" {
  source = "../registry"

  repository_name  = var.ecr_repository_name
  kms_key_arn      = module.registry_key.key_arn
  keep_image_count = var.ecr_keep_image_count
  tags             = local.tags
}

# Every new EBS volume in the region is encrypted (AWS managed aws/ebs key), whatever the
# StorageClass or launch template asks for: a second guard behind the gp3 class's own
# encrypted parameter.
resource "aws_ebs_encryption_by_default" "this" {
  count = var.enable_ebs_encryption_by_default ? 1 : 0

  enabled = true
}
