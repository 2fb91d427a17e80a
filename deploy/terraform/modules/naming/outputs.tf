output "prefix" {
  description = "The <project>-<environment> prefix of every resource name in the environment."
  value       = local.prefix
}

output "names" {
  description = "Names of the environment's named resources (cluster, node group, IAM roles), keyed by purpose."
  value       = local.names
}

output "iam_name_pattern" {
  description = "Wildcard matching every IAM role and policy name of the environment; the infrastructure role may only manage these."
  value       = "${local.prefix}-*"
}

output "tags" {
  description = "Tags for every resource: the standard Project, Environment and ManagedBy plus extra_tags (which cannot override them)."
  value       = local.tags
}
