output "region" {
  description = "AWS region of the environment."
  value       = module.stack.region
}

output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = module.stack.cluster_name
}

output "cluster_endpoint" {
  description = "HTTPS endpoint of the Kubernetes API server."
  value       = module.stack.cluster_endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64-encoded CA certificate of the Kubernetes API server."
  value       = module.stack.cluster_certificate_authority_data
}

output "ecr_repository_name" {
  description = "Name of the ECR repository of the store's image."
  value       = module.stack.ecr_repository_name
}

output "ecr_repository_url" {
  description = "URL to push the store's image to."
  value       = module.stack.ecr_repository_url
}

output "application_role_arn" {
  description = "ARN of the application pipeline's role: the AWS_APP_ROLE_ARN variable of the GitHub environment."
  value       = module.stack.application_role_arn
}

output "application_role_name" {
  description = "Name of the application pipeline's role."
  value       = module.stack.application_role_name
}

output "infrastructure_role_name" {
  description = "Name of the infrastructure pipeline's role (created by the bootstrap root)."
  value       = module.stack.infrastructure_role_name
}

output "vpc_id" {
  description = "ID of the environment's VPC."
  value       = module.stack.vpc_id
}

output "nat_gateway_public_ips" {
  description = "Public IPv4 addresses the cluster's outbound traffic comes from."
  value       = module.stack.nat_gateway_public_ips
}

output "pipeline_environment" {
  description = "The fields of the pipeline's environment file (region, account, cluster, ECR repository, role names), as strings."
  value       = module.stack.pipeline_environment
}
