# EKS-managed add-ons. The networking ones (vpc-cni, kube-proxy) and the Pod Identity agent
# are DaemonSets and go in before the node group; coredns and the EBS CSI driver need
# nodes to schedule on and follow it. Versions default to EKS's default for the pinned
# Kubernetes version and can be pinned per add-on through addon_versions.

locals {
  addons_before_nodes = {
    vpc-cni = jsonencode({
      # Enforce Kubernetes NetworkPolicy objects (the chart ships one for the store).
      enableNetworkPolicy = "true"
    })
    kube-proxy             = null
    eks-pod-identity-agent = null
  }

  # The add-on's own default StorageClass stays off: the store and the monitoring stack
  # use the encrypted gp3 class "gp3", a Kubernetes object that Argo CD syncs from
  # deploy/kubernetes (docs/infrastructure.md explains why it is not created here).
  addons_after_nodes = {
    coredns            = null
    aws-ebs-csi-driver = jsonencode({ defaultStorageClass = { enabled = false } })
  }

  addon_names = setunion(keys(local.addons_before_nodes), keys(local.addons_after_nodes))

  ebs_csi_namespace       = "kube-system"
  ebs_csi_service_account = "ebs-csi-controller-sa"
}

data "aws_eks_addon_version" "this" {
  for_each = { for name in local.addon_names : name => name if !contains(keys(var.addon_versions), name) }

  addon_name         = each.key
  kubernetes_version = var.kubernetes_version
  most_recent        = false
}

resource "aws_eks_addon" "before_nodes" {
  for_each = local.addons_before_nodes

  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = each.key
  addon_version               = lookup(var.addon_versions, each.key, try(data.aws_eks_addon_version.this[each.key].version, null))
  configuration_values        = each.value
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"
  tags                        = var.tags
}

resource "aws_eks_addon" "after_nodes" {
  for_each = local.addons_after_nodes

  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = each.key
  addon_version               = lookup(var.addon_versions, each.key, try(data.aws_eks_addon_version.this[each.key].version, null))
  configuration_values        = each.value
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"
  tags                        = var.tags

  depends_on = [
    aws_eks_node_group.this,
    aws_eks_pod_identity_association.ebs_csi,
  ]
}

# The EBS CSI controller's AWS permissions, through EKS Pod Identity: a role that only the
# Pod Identity service of this account can assume, bound to the driver's service account.

data "aws_iam_policy_document" "ebs_csi_trust" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]

    principals {
      type        = "Service"
      identifiers = ["pods.eks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [local.cluster_arn]
    }
  }
}

resource "aws_iam_role" "ebs_csi" {
  name               = var.role_names.ebs_csi
  assume_role_policy = data.aws_iam_policy_document.ebs_csi_trust.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "ebs_csi" {
  role       = aws_iam_role.ebs_csi.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
}

resource "aws_eks_pod_identity_association" "ebs_csi" {
  cluster_name    = aws_eks_cluster.this.name
  namespace       = local.ebs_csi_namespace
  service_account = local.ebs_csi_service_account
  role_arn        = aws_iam_role.ebs_csi.arn
  tags            = var.tags

  depends_on = [aws_eks_addon.before_nodes]
}
