# Subnet and NAT layout of the VPC, kept apart from the resources that build it so the
# arithmetic can be tested without a cloud account.
#
# The VPC is cut into 2^n equal slices (n = 2 for up to three zones, 3 for up to seven):
# slice i is the private subnet of zone i, the last slice is split into 16 public subnets
# of which the first ones are used. Private subnets are large because the VPC CNI gives
# every pod an address from them; public subnets only hold NAT gateways and load balancers.

locals {
  zone_count     = length(var.availability_zones)
  slice_newbits  = local.zone_count <= 3 ? 2 : 3
  public_block   = cidrsubnet(var.vpc_cidr, local.slice_newbits, pow(2, local.slice_newbits) - 1)
  public_newbits = 4

  private_subnets = {
    for index, zone in var.availability_zones : zone => cidrsubnet(var.vpc_cidr, local.slice_newbits, index)
  }

  public_subnets = {
    for index, zone in var.availability_zones : zone => cidrsubnet(local.public_block, local.public_newbits, index)
  }

  nat_gateway_zones = var.single_nat_gateway ? [var.availability_zones[0]] : var.availability_zones

  # Which zone's NAT gateway each private subnet routes through: its own, or the single one.
  private_egress_zone = {
    for zone in var.availability_zones : zone => var.single_nat_gateway ? var.availability_zones[0] : zone
  }
}
