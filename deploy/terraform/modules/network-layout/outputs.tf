output "private_subnet_cidrs" {
  description = "CIDR block of the private subnet of each availability zone, keyed by zone name."
  value       = local.private_subnets
}

output "public_subnet_cidrs" {
  description = "CIDR block of the public subnet of each availability zone, keyed by zone name."
  value       = local.public_subnets
}

output "nat_gateway_zones" {
  description = "Availability zones that get a NAT gateway (the first zone only, or every zone)."
  value       = local.nat_gateway_zones
}

output "private_egress_zone" {
  description = "For each private subnet's zone, the zone whose NAT gateway its default route uses."
  value       = local.private_egress_zone
}
