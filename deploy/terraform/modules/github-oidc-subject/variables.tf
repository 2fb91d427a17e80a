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
  description = "The GitHub environment the deploying job runs in (jobs.<id>.environment); only jobs in it may assume the role. Null for a pull-request plan role."
  default     = null

  validation {
    condition     = var.github_environment == null || can(regex("^[A-Za-z0-9._-]{1,255}$", var.github_environment))
    error_message = "github_environment must be a GitHub environment name without spaces, : or wildcards."
  }
}

variable "branch" {
  type        = string
  description = "The branch whose workflow runs may assume the role, e.g. main for production. Null for a pull-request plan role."
  default     = null

  validation {
    condition     = var.branch == null || (can(regex("^[A-Za-z0-9._/-]{1,255}$", var.branch)) && !startswith(coalesce(var.branch, "x"), "refs/"))
    error_message = "branch must be a plain branch name (main, not refs/heads/main), without wildcards."
  }
}

variable "pull_request_plan" {
  type        = bool
  description = "Trust pull-request workflow runs of the repository instead of one environment and branch. Only for roles whose policies are read-only (terraform plan): pull requests run code that has not been reviewed yet."
  default     = false

  validation {
    condition     = var.pull_request_plan ? (var.github_environment == null && var.branch == null) : (var.github_environment != null && var.branch != null)
    error_message = "Set github_environment and branch for a deployment role, or pull_request_plan = true (and neither of them) for a plan role."
  }
}
