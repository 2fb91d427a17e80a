variable "name" {
  type        = string
  description = "Name prefix of the VPC and its resources, e.g. kvstore-staging."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}$", var.name))
    error_message = "name must be 2-41 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "vpc_cidr" {
  type        = string
  description = "IPv4 CIDR block of the VPC (/16 to /20); private and public subnets are carved from it by the network-layout module."

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr))
    error_message = "vpc_cidr must be an IPv4 CIDR block such as 10.40.0.0/16."
  }
}

variable "availability_zones" {
  type        = list(string)
  description = "Availability zones for the subnets, one public and one private subnet in each."

  validation {
    condition     = length(var.availability_zones) >= 2
    error_message = "EKS needs subnets in at least two availability zones."
  }
}

variable "single_nat_gateway" {
  type        = bool
  description = "true: one NAT gateway for all zones (staging, cheaper); false: one per zone so losing a zone does not cut egress elsewhere (production)."
}

variable "cluster_name" {
  type        = string
  description = "Name of the EKS cluster using the subnets; tagged on them so the AWS Load Balancer Controller can discover them."

  validation {
    condition     = can(regex("^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$", var.cluster_name))
    error_message = "cluster_name must be a valid EKS cluster name (letters, digits, - and _, at most 100 characters)."
  }
}

variable "flow_logs_role_name" {
  type        = string
  description = "Name of the IAM role that VPC Flow Logs assumes to write to CloudWatch Logs."

  validation {
    condition     = can(regex("^[\\w+=,.@-]{1,64}$", var.flow_logs_role_name))
    error_message = "flow_logs_role_name must be a valid IAM role name (at most 64 characters)."
  }
}

variable "flow_logs_retention_days" {
  type        = number
  description = "Retention of the VPC flow log group in days."
  default     = 365

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.flow_logs_retention_days)
    error_message = "flow_logs_retention_days must be a CloudWatch Logs retention value of at least one year (365, 400, 545, 731, 1096, 1827, ...)."
  }
}

variable "logs_kms_key_arn" {
  type        = string
  description = "ARN of the KMS key that encrypts the flow log group; its key policy must allow CloudWatch Logs."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.logs_kms_key_arn))
    error_message = "logs_kms_key_arn must be a KMS key ARN."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource of the module."
  default     = {}
}
