variable "cluster_name" {
  type        = string
  description = "Name of the EKS cluster."

  validation {
    condition     = can(regex("^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$", var.cluster_name))
    error_message = "cluster_name must start with a letter or digit and hold at most 100 letters, digits, - or _."
  }
}

variable "kubernetes_version" {
  type        = string
  description = "Kubernetes minor version of the control plane and nodes, pinned (e.g. 1.34) so upgrades are reviewed changes, staging first."

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version must be a minor version such as 1.34 (no patch level: EKS picks the patch)."
  }
}

variable "vpc_id" {
  type        = string
  description = "ID of the VPC the cluster runs in."

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123456789abcdef0."
  }
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets for the control-plane network interfaces and the nodes, in at least two availability zones."

  validation {
    condition     = length(var.subnet_ids) >= 2 && alltrue([for id in var.subnet_ids : can(regex("^subnet-[0-9a-f]+$", id))])
    error_message = "Give at least two subnet IDs (subnet-...), in different availability zones."
  }
}

variable "endpoint_public_access" {
  type        = bool
  description = "Also expose the Kubernetes API endpoint publicly, limited to public_access_cidrs. The private endpoint is always on."
  default     = false
}

variable "public_access_cidrs" {
  type        = list(string)
  description = "CIDR blocks allowed to reach the public API endpoint when endpoint_public_access is true (e.g. the office or a VPN egress)."
  default     = []

  validation {
    condition     = alltrue([for cidr in var.public_access_cidrs : can(cidrnetmask(cidr)) && cidr != "0.0.0.0/0"])
    error_message = "public_access_cidrs must be IPv4 CIDR blocks and must not include 0.0.0.0/0."
  }
}

variable "secrets_kms_key_arn" {
  type        = string
  description = "ARN of the KMS key for envelope encryption of Kubernetes Secrets."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.secrets_kms_key_arn))
    error_message = "secrets_kms_key_arn must be a KMS key ARN."
  }
}

variable "logs_kms_key_arn" {
  type        = string
  description = "ARN of the KMS key that encrypts the control-plane log group; its key policy must allow CloudWatch Logs."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.logs_kms_key_arn))
    error_message = "logs_kms_key_arn must be a KMS key ARN."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the control-plane log group (api, audit, authenticator, controllerManager, scheduler) in days."
  default     = 365

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch Logs retention value of at least one year (365, 400, 545, 731, ...)."
  }
}

variable "role_names" {
  type = object({
    cluster = string
    node    = string
    ebs_csi = string
  })
  description = "Names of the IAM roles the module creates: the cluster role, the node role and the EBS CSI driver's role."

  validation {
    condition     = alltrue([for name in values(var.role_names) : can(regex("^[\\w+=,.@-]{1,64}$", name))])
    error_message = "Every role name must be a valid IAM role name of at most 64 characters."
  }
}

variable "node_group" {
  type = object({
    name           = string
    instance_types = list(string)
    capacity_type  = optional(string, "ON_DEMAND")
    min_size       = number
    max_size       = number
    desired_size   = number
    disk_size_gib  = optional(number, 50)
  })
  description = "The managed node group: EC2 instance types, ON_DEMAND or SPOT, and scaling bounds. The desired size is only the initial value; later changes come from the autoscaler."

  validation {
    condition     = contains(["ON_DEMAND", "SPOT"], var.node_group.capacity_type)
    error_message = "node_group.capacity_type must be ON_DEMAND or SPOT."
  }

  validation {
    condition     = var.node_group.min_size >= 1 && var.node_group.min_size <= var.node_group.desired_size && var.node_group.desired_size <= var.node_group.max_size
    error_message = "node_group sizes must satisfy 1 <= min_size <= desired_size <= max_size."
  }

  validation {
    condition     = length(var.node_group.instance_types) > 0 && alltrue([for type in var.node_group.instance_types : can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", type))])
    error_message = "node_group.instance_types must list at least one EC2 instance type such as m6i.large."
  }

  validation {
    condition     = var.node_group.disk_size_gib >= 20 && var.node_group.disk_size_gib <= 1000
    error_message = "node_group.disk_size_gib must be between 20 and 1000."
  }
}

variable "addon_versions" {
  type        = map(string)
  description = "Pinned versions of EKS add-ons, keyed by add-on name (e.g. { coredns = \"v1.11.4-eksbuild.2\" }). Add-ons not listed get EKS's default version for kubernetes_version."
  default     = {}

  validation {
    condition     = alltrue([for name in keys(var.addon_versions) : contains(["vpc-cni", "kube-proxy", "coredns", "eks-pod-identity-agent", "aws-ebs-csi-driver"], name)])
    error_message = "addon_versions keys must be among vpc-cni, kube-proxy, coredns, eks-pod-identity-agent, aws-ebs-csi-driver."
  }
}

variable "admin_principal_arns" {
  type        = list(string)
  description = "IAM roles or users that get cluster-admin through an access entry (e.g. the platform team's SSO role). The cluster creator gets no implicit access."
  default     = []

  validation {
    condition     = alltrue([for arn in var.admin_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+$", arn))])
    error_message = "admin_principal_arns must be IAM role or user ARNs (arn:aws:iam::<account>:role/<name>)."
  }
}

variable "access_entries" {
  type = map(object({
    principal_arn = string
    policy_name   = string
    namespaces    = list(string)
  }))
  description = "Further access entries keyed by a short name: an IAM principal, the EKS access policy it gets (e.g. AmazonEKSEditPolicy) and the namespaces it applies to (empty list: whole cluster)."
  default     = {}

  validation {
    condition = alltrue([for entry in values(var.access_entries) : contains(
      ["AmazonEKSClusterAdminPolicy", "AmazonEKSAdminPolicy", "AmazonEKSEditPolicy", "AmazonEKSViewPolicy"],
      entry.policy_name,
    )])
    error_message = "access_entries policy_name must be one of AmazonEKSClusterAdminPolicy, AmazonEKSAdminPolicy, AmazonEKSEditPolicy, AmazonEKSViewPolicy."
  }

  validation {
    condition     = alltrue([for entry in values(var.access_entries) : entry.policy_name != "AmazonEKSClusterAdminPolicy" || length(entry.namespaces) == 0])
    error_message = "AmazonEKSClusterAdminPolicy is cluster-wide; give it an empty namespaces list (or use AmazonEKSAdminPolicy for namespaces)."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource of the module."
  default     = {}
}
