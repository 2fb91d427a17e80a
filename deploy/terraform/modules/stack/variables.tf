# Inputs of one environment. Everything that differs between staging and production is a
# variable here and a value in the environment's terraform.tfvars.

variable "project" {
  type        = string
  description = "Short project name that prefixes every resource name."
  default     = "kvstore"
}

variable "environment" {
  type        = string
  description = "Environment name (staging, production); also the GitHub environment whose jobs deploy it."
}

variable "extra_tags" {
  type        = map(string)
  description = "Tags added to the standard Project, Environment and ManagedBy tags."
  default     = {}
}

variable "vpc_cidr" {
  type        = string
  description = "IPv4 CIDR block of the environment's VPC, /16 to /20."
}

variable "availability_zones" {
  type        = list(string)
  description = "Availability zones of the region to spread subnets and nodes over, named explicitly so the set never changes when AWS adds a zone."

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 6 && length(distinct(var.availability_zones)) == length(var.availability_zones)
    error_message = "availability_zones must list 2 to 6 distinct zones; three let a three-member store survive the loss of a zone."
  }
}

variable "single_nat_gateway" {
  type        = bool
  description = "One NAT gateway for the whole VPC (staging) instead of one per availability zone (production)."
}

variable "flow_logs_retention_days" {
  type        = number
  description = "Retention of the VPC flow logs in days (at least 365)."
  default     = 365
}

variable "kubernetes_version" {
  type        = string
  description = "Pinned EKS Kubernetes minor version, e.g. 1.34. Raise it in staging first."
}

variable "endpoint_public_access" {
  type        = bool
  description = "Also expose the Kubernetes API publicly, limited to public_access_cidrs (the private endpoint is always on)."
  default     = false
}

variable "public_access_cidrs" {
  type        = list(string)
  description = "CIDR blocks allowed to reach the public API endpoint when it is enabled."
  default     = []
}

variable "control_plane_log_retention_days" {
  type        = number
  description = "Retention of the EKS control-plane logs in days (at least 365)."
  default     = 365
}

variable "node_group" {
  type = object({
    instance_types = list(string)
    capacity_type  = optional(string, "ON_DEMAND")
    min_size       = number
    max_size       = number
    desired_size   = number
    disk_size_gib  = optional(number, 50)
  })
  description = "The managed node group: instance types, ON_DEMAND or SPOT, scaling bounds and root volume size."
}

variable "addon_versions" {
  type        = map(string)
  description = "Pinned EKS add-on versions by add-on name; unlisted add-ons get EKS's default for kubernetes_version."
  default     = {}
}

variable "cluster_admin_principal_arns" {
  type        = list(string)
  description = "IAM roles (e.g. the platform team's SSO role) given cluster-admin through access entries."
  default     = []
}

variable "enable_ebs_encryption_by_default" {
  type        = bool
  description = "Turn on EBS encryption by default in this account and region, so every volume (the store's, the nodes') is encrypted even if a StorageClass forgets to ask. Account-wide: set it in only one environment if two share an account and region."
  default     = true
}

variable "github_repository" {
  type        = string
  description = "The GitHub repository (owner/name) whose workflows deploy this environment."
}

variable "deploy_branch" {
  type        = string
  description = "The branch that deploys this environment (staging for staging, main for production)."
}

variable "application_namespaces" {
  type        = list(string)
  description = "Kubernetes namespaces the application pipeline may deploy into (edit rights through an access entry)."
  default     = ["kvstore"]

  validation {
    condition     = length(var.application_namespaces) > 0 && alltrue([for ns in var.application_namespaces : can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", ns)) && !contains(["kube-system", "kube-public", "default"], ns)])
    error_message = "application_namespaces must be valid namespace names, at least one, and not kube-system, kube-public or default."
  }
}

variable "ecr_repository_name" {
  type        = string
  description = "Name of the ECR repository for the store's image."
  default     = "kvstore"
}

variable "ecr_keep_image_count" {
  type        = number
  description = "How many recent images the ECR lifecycle policy keeps."
  default     = 200
}
