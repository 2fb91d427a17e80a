output "state_bucket_name" {
  description = "Name of the state bucket, for the bucket setting of the environments' backend blocks."
  value       = module.state_bucket.bucket_name
}

output "state_kms_key_arn" {
  description = "ARN of the KMS key that encrypts the state objects."
  value       = module.state_key.key_arn
}

output "github_oidc_provider_arn" {
  description = "ARN of the account's GitHub Actions OIDC provider."
  value       = local.github_oidc_provider_arn
}

output "infrastructure_role_arns" {
  description = "ARN of each environment's infrastructure role (terraform apply), keyed by environment: the AWS_INFRA_ROLE_ARN variable of the GitHub environment."
  value       = { for env, role in module.infrastructure_role : env => role.role_arn }
}

output "plan_role_arns" {
  description = "ARN of each environment's plan role (terraform plan on pull requests), keyed by environment: the AWS_PLAN_ROLE_ARN variable."
  value       = { for env, role in module.plan_role : env => role.role_arn }
}

output "trusted_subjects" {
  description = "The OIDC subjects each role accepts, keyed by role name; the repository's subject template must produce them (see docs/infrastructure.md)."
  value = merge(
    { for role in module.infrastructure_role : role.role_name => role.subject },
    { for role in module.plan_role : role.role_name => role.subject },
  )
}
