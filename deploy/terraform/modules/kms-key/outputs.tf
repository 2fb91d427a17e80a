output "key_arn" {
  description = "ARN of the key, for encryption settings and IAM policies."
  value       = aws_kms_key.this.arn
}

output "key_id" {
  description = "ID of the key."
  value       = aws_kms_key.this.key_id
}

output "alias_arn" {
  description = "ARN of the key's alias."
  value       = aws_kms_alias.this.arn
}
