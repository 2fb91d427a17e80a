output "role_arn" {
  description = "ARN of the role, for role-to-assume in the workflow (aws-actions/configure-aws-credentials)."
  value       = aws_iam_role.this.arn
}

output "role_name" {
  description = "Name of the role."
  value       = aws_iam_role.this.name
}

output "subject" {
  description = "The exact OIDC subject the trust policy accepts."
  value       = local.subject
}
