# The managed node group, on Amazon Linux 2023, in the private subnets. A launch template
# enforces IMDSv2 with a hop limit of 1 (pods cannot borrow the node's credentials; they
# get their own through Pod Identity) and an encrypted gp3 root volume.

data "aws_iam_policy_document" "node_trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name               = var.role_names.node
  assume_role_policy = data.aws_iam_policy_document.node_trust.json
  tags               = var.tags
}

# AmazonEKS_CNI_Policy stays on the node role: the VPC CNI must assign pod addresses
# before the Pod Identity agent (itself a pod) can run.
resource "aws_iam_role_policy_attachment" "node" {
  for_each = toset([
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryPullOnly",
  ])

  role       = aws_iam_role.node.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

resource "aws_launch_template" "nodes" {
  name_prefix            = "${var.node_group.name}-"
  description            = "Nodes of the ${var.cluster_name} EKS cluster"
  update_default_version = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = var.node_group.disk_size_gib
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = var.node_group.name })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(var.tags, { Name = var.node_group.name })
  }

  tags = var.tags
}

resource "aws_eks_node_group" "this" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = var.node_group.name
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = var.subnet_ids
  version         = var.kubernetes_version
  ami_type        = "AL2023_x86_64_STANDARD"
  capacity_type   = var.node_group.capacity_type
  instance_types  = var.node_group.instance_types

  scaling_config {
    min_size     = var.node_group.min_size
    max_size     = var.node_group.max_size
    desired_size = var.node_group.desired_size
  }

  # One node at a time, so a three-member store never loses quorum to a node rollout.
  update_config {
    max_unavailable = 1
  }

  launch_template {
    id      = aws_launch_template.nodes.id
    version = aws_launch_template.nodes.latest_version
  }

  tags = var.tags

  # Nodes only become Ready once the CNI runs; kube-proxy and the Pod Identity agent
  # should be there before the first workload.
  depends_on = [
    aws_iam_role_policy_attachment.node,
    aws_eks_addon.before_nodes,
  ]

  lifecycle {
    # The desired size is the starting point; an autoscaler owns it afterwards.
    ignore_changes = [scaling_config[0].desired_size]
  }
}
