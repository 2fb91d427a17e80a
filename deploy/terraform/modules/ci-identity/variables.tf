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

# github_repository, github_environment, branch and pull_request_plan are validated by the
# github-oidc-subject module, which turns them into the trusted subject.

variable "github_repository" {
  type        = string
  description = "The repository allowed to assume the role, as owner/name."
}

variable "github_environment" {
  type        = string
  description = "The GitHub environment the deploying job runs in (jobs.<id>.environment). Null for a pull-request plan role."
  default     = null
}

variable "branch" {
  type        = string
  description = "The branch whose workflow runs may assume the role, e.g. main for production. Null for a pull-request plan role."
  default     = null
}

variable "pull_request_plan" {
  type        = bool
  description = "Trust pull-request runs of the repository instead of one environment and branch; only for read-only (plan) roles."
  default     = false
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
