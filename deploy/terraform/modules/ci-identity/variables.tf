variable "role_name" {
  type        = string
  description = "Name of the IAM role GitHub Actions assumes."

  validation {
    condition     = can(regex("^[\\w+=,.@-]{1,64}$", var.role_name))
    error_message = "role_name must be a valid IAM role name of at most 64 characters."
  }
}

variable "oidc_provider_arn" {
  type        = string
  description = "ARN of the account's IAM OIDC provider for token.actions.githubusercontent.com (created by the bootstrap root)."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/token\\.actions\\.githubusercontent\\.com$", var.oidc_provider_arn))
    error_message = "oidc_provider_arn must be the ARN of the token.actions.githubusercontent.com OIDC provider."
  }
}

variable "github_repository" {
  type        = string
  description = "The repository allowed to assume the role, as owner/name."

  validation {
    condition     = can(regex("^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$", var.github_repository))
    error_message = "github_repository must be owner/name, e.g. example-org/kvstore, without wildcards."
  }
}

variable "github_environment" {
  type        = string
  description = "The GitHub environment the deploying job runs in (jobs.<id>.environment); only jobs in it may assume the role."

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,255}$", var.github_environment))
    error_message = "github_environment must be a GitHub environment name without spaces, : or wildcards."
  }
}

variable "branch" {
  type        = string
  description = "The branch whose workflow runs may assume the role, e.g. main for production."

  validation {
    condition     = can(regex("^[A-Za-z0-9._/-]{1,255}$", var.branch)) && !startswith(var.branch, "refs/")
    error_message = "branch must be a plain branch name (main, not refs/heads/main), without wildcards."
  }
}

variable "policies" {
  type        = map(string)
  description = "Inline policies of the role, keyed by policy name, as JSON documents. Least privilege: give only what the pipeline stage does."

  validation {
    condition     = length(var.policies) > 0 && alltrue([for doc in values(var.policies) : can(jsondecode(doc))])
    error_message = "policies must hold at least one valid JSON policy document."
  }
}

variable "max_session_duration" {
  type        = number
  description = "Longest session, in seconds, a pipeline run can get from the role."
  default     = 3600

  validation {
    condition     = var.max_session_duration >= 900 && var.max_session_duration <= 14400
    error_message = "max_session_duration must be between 900 and 14400 seconds (a deploy should not need more than four hours)."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for the role."
  default     = {}
}
