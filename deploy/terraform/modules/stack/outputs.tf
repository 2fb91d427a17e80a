output "region" {
  description = "AWS region of the environment."
  value       = data.aws_region.current.region
}

output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = module.cluster.cluster_name
}

output "cluster_endpoint" {
  description = "HTTPS endpoint of the Kubernetes API server."
  value       = module.cluster.cluster_endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64-encoded CA certificate of the Kubernetes API server."
  value       = module.cluster.cluster_certificate_authority_data
}

output "ecr_repository_name" {
  description = "Name of the ECR repository of the store's image."
  value       = module.registry.repository_name
}

output "ecr_repository_url" {
  description = "URL to push the store's image to."
  value       = module.registry.repository_url
}

output "application_role_arn" {
  description = "ARN of the role the application pipeline assumes (push to ECR, deploy to the cluster)."
  value       = module.application_role.role_arn
}

output "application_role_name" {
  description = "Name of the application pipeline's role."
  value       = module.application_role.role_name
}

output "infrastructure_role_name" {
  description = "Name of the role the infrastructure pipeline assumes to apply this environment (created by the bootstrap root)."
  value       = local.names.infrastructure_role
}

output "vpc_id" {
  description = "ID of the environment's VPC."
  value       = module.network.vpc_id
}

output "nat_gateway_public_ips" {
  description = "Public IPv4 addresses the cluster's outbound traffic comes from."
  value       = module.network.nat_gateway_public_ips
}

output "pipeline_environment" {
  description = "The fields the pipeline's environment file needs, as strings: region, cluster, ECR repository and role names."
  value = {
    AWS_REGION               = data.aws_region.current.region
    AWS_ACCOUNT_ID           = data.aws_caller_identity.current.account_id
    EKS_CLUSTER_NAME         = module.cluster.cluster_name
    ECR_REPOSITORY_NAME      = module.registry.repository_name
    ECR_REPOSITORY_URL       = module.registry.repository_url
    APPLICATION_ROLE_NAME    = module.application_role.role_name
    APPLICATION_ROLE_ARN     = module.application_role.role_arn
    INFRASTRUCTURE_ROLE_NAME = local.names.infrastructure_role
  }
}
