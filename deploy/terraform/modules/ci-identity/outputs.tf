output "role_arn" {
  description = "ARN of the role, for role-to-assume in the workflow (aws-actions/configure-aws-credentials)."
  value       = aws_iam_role.this.arn
}

output "role_name" {
  description = "Name of the role."
  value       = aws_iam_role.this.name
}

output "subject" {
  description = "The OIDC subject (or, for a plan role, subject pattern) the trust policy accepts."
  value       = module.subject.subject
}
