# An environment root: the provider for the environment's account and one call of the
# shared stack module. Every environment root is this same file; what differs lives in
# terraform.tfvars and backend.tf.

provider "aws" {
  region = var.region

  # Refuse to apply this environment to any other account, whatever credentials are active.
  allowed_account_ids = [var.account_id]
}

module "stack" {
  source = "../../modules/stack"

  project                          = var.project
  environment                      = var.environment
  extra_tags                       = var.extra_tags
  vpc_cidr                         = var.vpc_cidr
  availability_zones               = var.availability_zones
  single_nat_gateway               = var.single_nat_gateway
  flow_logs_retention_days         = var.flow_logs_retention_days
  kubernetes_version               = var.kubernetes_version
  endpoint_public_access           = var.endpoint_public_access
  public_access_cidrs              = var.public_access_cidrs
  control_plane_log_retention_days = var.control_plane_log_retention_days
  node_group                       = var.node_group
  addon_versions                   = var.addon_versions
  cluster_admin_principal_arns     = var.cluster_admin_principal_arns
  enable_ebs_encryption_by_default = var.enable_ebs_encryption_by_default
  github_repository                = var.github_repository
  deploy_branch                    = var.deploy_branch
  application_namespaces           = var.application_namespaces
  ecr_repository_name              = var.ecr_repository_name
  ecr_keep_image_count             = var.ecr_keep_image_count
}
