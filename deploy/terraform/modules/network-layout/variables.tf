variable "vpc_cidr" {
  type        = string
  description = "IPv4 CIDR block of the VPC, between /16 and /20 so that every subnet below is at least a /26."

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && can(regex("^\\d+\\.\\d+\\.\\d+\\.\\d+/(1[6-9]|20)$", var.vpc_cidr))
    error_message = "vpc_cidr must be an IPv4 CIDR block with a prefix length from /16 to /20, for example 10.40.0.0/16."
  }

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && try(cidrhost(var.vpc_cidr, 0) == split("/", var.vpc_cidr)[0], false)
    error_message = "vpc_cidr must be the network address of its block (10.40.0.0/16, not 10.40.3.0/16)."
  }
}

variable "availability_zones" {
  type        = list(string)
  description = "Availability zones to spread the subnets over, in order; one public and one private subnet each."

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 6
    error_message = "Give between 2 and 6 availability zones (EKS needs subnets in at least two)."
  }

  validation {
    condition     = length(distinct(var.availability_zones)) == length(var.availability_zones)
    error_message = "availability_zones must not repeat a zone."
  }
}

variable "single_nat_gateway" {
  type        = bool
  description = "One NAT gateway shared by every private subnet (cheaper, one zone is a single point of failure for egress) instead of one per zone."
}
