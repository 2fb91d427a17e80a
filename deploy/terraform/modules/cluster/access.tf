# Who may use the Kubernetes API. Authentication mode API means only access entries count;
# the cluster creator (the CI infrastructure role) gets nothing implicitly.

locals {
  policy_arn_prefix = "arn:${local.partition}:eks::aws:cluster-access-policy"

  access_entries = merge(
    {
      # Keyed by ARN, so removing one admin does not re-create the others' entries.
      for arn in var.admin_principal_arns : "admin:${arn}" => {
        principal_arn = arn
        policy_name   = "AmazonEKSClusterAdminPolicy"
        namespaces    = []
      }
    },
    var.access_entries,
  )
}

resource "aws_eks_access_entry" "this" {
  for_each = local.access_entries

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = each.value.principal_arn
  type          = "STANDARD"
  tags          = var.tags
}

resource "aws_eks_access_policy_association" "this" {
  for_each = local.access_entries

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = aws_eks_access_entry.this[each.key].principal_arn
  policy_arn    = "${local.policy_arn_prefix}/${each.value.policy_name}"

  access_scope {
    type       = length(each.value.namespaces) == 0 ? "cluster" : "namespace"
    namespaces = length(each.value.namespaces) == 0 ? null : each.value.namespaces
  }
}
