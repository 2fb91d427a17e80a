variable "project" {
  type        = string
  description = "Short project name that prefixes every resource name, e.g. kvstore."
  default     = "kvstore"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,11}$", var.project))
    error_message = "project must be 2-12 lowercase letters or digits, starting with a letter (it prefixes IAM role and cluster names, which have length limits)."
  }
}

variable "environment" {
  type        = string
  description = "Environment name, e.g. staging or production; also the GitHub environment that deploys it."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}[a-z0-9]$", var.environment))
    error_message = "environment must be 3-16 lowercase letters, digits or dashes, starting with a letter and not ending with a dash."
  }
}

variable "extra_tags" {
  type        = map(string)
  description = "Tags added to the standard ones (Project, Environment, ManagedBy) on every resource."
  default     = {}

  validation {
    condition     = alltrue([for key in keys(var.extra_tags) : !startswith(lower(key), "aws:")])
    error_message = "Tag keys starting with aws: are reserved by AWS."
  }
}
