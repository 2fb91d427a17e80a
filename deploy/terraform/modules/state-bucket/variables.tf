variable "bucket_name" {
  type        = string
  description = "Globally unique name of the state bucket; the access-log bucket is named <bucket_name>-access-logs."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,47}[a-z0-9]$", var.bucket_name)) && !can(regex("--", var.bucket_name))
    error_message = "bucket_name must be 3-49 lowercase letters, digits or single dashes (49 leaves room for the -access-logs suffix within S3's 63)."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the customer managed KMS key that encrypts the state objects (SSE-KMS)."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), not an alias."
  }
}

variable "noncurrent_version_retention_days" {
  type        = number
  description = "How long superseded state versions are kept, i.e. how far back a bad apply can be rolled back."
  default     = 90

  validation {
    condition     = var.noncurrent_version_retention_days >= 30
    error_message = "Keep old state versions at least 30 days, or a mistake noticed late cannot be undone."
  }
}

variable "access_log_retention_days" {
  type        = number
  description = "How long S3 server access logs of the state bucket are kept."
  default     = 365

  validation {
    condition     = var.access_log_retention_days >= 90
    error_message = "Keep access logs at least 90 days so an investigation has something to read."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for both buckets."
  default     = {}
}
