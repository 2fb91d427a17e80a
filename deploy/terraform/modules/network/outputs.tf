output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "CIDR block of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "private_subnet_ids" {
  description = "IDs of the private subnets (nodes, pods, the EKS control-plane interfaces), in availability-zone order."
  value       = [for zone in var.availability_zones : aws_subnet.private[zone].id]
}

output "public_subnet_ids" {
  description = "IDs of the public subnets (NAT gateways, internet-facing load balancers), in availability-zone order."
  value       = [for zone in var.availability_zones : aws_subnet.public[zone].id]
}

output "nat_gateway_public_ips" {
  description = "Public IPv4 addresses the private subnets egress from, e.g. for allow-lists of external services."
  value       = [for zone in module.layout.nat_gateway_zones : aws_eip.nat[zone].public_ip]
}

output "flow_log_group_name" {
  description = "CloudWatch Logs group holding the VPC flow logs."
  value       = aws_cloudwatch_log_group.flow_logs.name
}
