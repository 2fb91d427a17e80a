output "bucket_name" {
  description = "Name of the state bucket, for the bucket setting of each root's backend \"s3\" block."
  value       = aws_s3_bucket.state.id
}

output "bucket_arn" {
  description = "ARN of the state bucket, for IAM policies that scope access to one state key."
  value       = aws_s3_bucket.state.arn
}

output "access_log_bucket_name" {
  description = "Name of the bucket that receives the state bucket's S3 server access logs."
  value       = aws_s3_bucket.logs.id
}
