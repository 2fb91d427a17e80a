variable "repository_name" {
  type        = string
  description = "Name of the ECR repository for the store's image, e.g. kvstore."

  validation {
    condition     = can(regex("^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$", var.repository_name)) && length(var.repository_name) <= 256
    error_message = "repository_name must be lowercase letters, digits and single . _ - or / separators (ECR naming rules), at most 256 characters."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the KMS key that encrypts the images."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "keep_image_count" {
  type        = number
  description = "How many of the most recent images the lifecycle policy keeps. Environments pin images by digest in git, so keep enough to cover every digest still deployed or likely to be rolled back to."
  default     = 200

  validation {
    condition     = var.keep_image_count >= 30 && var.keep_image_count <= 10000
    error_message = "keep_image_count must be between 30 (enough for rollbacks) and 10000."
  }
}

variable "untagged_image_expiry_days" {
  type        = number
  description = "Days after which untagged images (failed or superseded pushes) are deleted."
  default     = 14

  validation {
    condition     = var.untagged_image_expiry_days >= 1 && var.untagged_image_expiry_days <= 365
    error_message = "untagged_image_expiry_days must be between 1 and 365."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for the repository."
  default     = {}
}
