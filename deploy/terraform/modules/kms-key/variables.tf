variable "alias" {
  type        = string
  description = "Alias of the key without the alias/ prefix, e.g. kvstore-staging-logs."

  validation {
    condition     = can(regex("^[a-zA-Z0-9/_-]{1,250}$", var.alias)) && !startswith(var.alias, "aws/")
    error_message = "alias may hold letters, digits, /, _ and -, without the alias/ prefix, and must not start with aws/ (reserved)."
  }
}

variable "description" {
  type        = string
  description = "What the key encrypts; shown in the KMS console and audit trails."

  validation {
    condition     = length(var.description) > 0 && length(var.description) <= 8192
    error_message = "description must be 1 to 8192 characters."
  }
}

variable "allow_cloudwatch_logs" {
  type        = bool
  description = "Let CloudWatch Logs in this region use the key for this account's log groups (needed for KMS-encrypted log groups)."
  default     = false
}

variable "deletion_window_in_days" {
  type        = number
  description = "Waiting period before a scheduled deletion takes effect; the last chance to cancel it."
  default     = 30

  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days must be between 7 and 30."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for the key."
  default     = {}
}
