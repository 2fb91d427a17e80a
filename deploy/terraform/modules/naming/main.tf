# One place that decides how resources are named, so the bootstrap root (which creates the
# infrastructure role before any environment exists) and the environment stacks agree on
# names without passing ARNs around.

locals {
  prefix = "${var.project}-${var.environment}"

  names = {
    cluster             = local.prefix
    node_group          = "${local.prefix}-default"
    application_role    = "${local.prefix}-ci-application"
    infrastructure_role = "${local.prefix}-ci-infrastructure"
    plan_role           = "${local.prefix}-ci-plan"
    cluster_role        = "${local.prefix}-cluster"
    node_role           = "${local.prefix}-node"
    ebs_csi_role        = "${local.prefix}-ebs-csi"
    flow_logs_role      = "${local.prefix}-vpc-flow-logs"
  }

  tags = merge(var.extra_tags, {
    Project     = var.project
    Environment = var.environment
    ManagedBy   = "terraform"
  })
}
