output "subject" {
  description = "The sub claim value (a pattern for pull_request_plan) the role's trust policy accepts."
  value       = var.pull_request_plan ? local.pull_request_subject : local.deployment_subject
}

output "condition_test" {
  description = "IAM condition operator for the sub claim: StringEquals for deployments, StringLike (pull request number) for plan roles."
  value       = var.pull_request_plan ? "StringLike" : "StringEquals"
}

output "description" {
  description = "Human-readable summary of who may assume the role, for the role's description."
  value       = var.pull_request_plan ? "GitHub Actions: pull requests of ${var.github_repository} (read-only plan)" : "GitHub Actions: ${var.github_repository}, environment ${coalesce(var.github_environment, "-")}, branch ${coalesce(var.branch, "-")}"
}
