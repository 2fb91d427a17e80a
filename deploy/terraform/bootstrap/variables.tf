variable "region" {
  type        = string
  description = "AWS region of the state bucket and of the environments in this account."

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region such as eu-west-1."
  }
}

variable "account_id" {
  type        = string
  description = "The AWS account this bootstrap is for; the provider refuses to run against any other."

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be the 12-digit AWS account ID, quoted."
  }
}

variable "project" {
  type        = string
  description = "Short project name that prefixes every resource name (must match the environments' project)."
  default     = "kvstore"
}

variable "state_bucket_name" {
  type        = string
  description = "Globally unique name of the Terraform state bucket of this account (the bucket setting of the backend files)."
}

variable "github_repository" {
  type        = string
  description = "The GitHub repository (owner/name) whose workflows plan and apply the environments."
}

variable "environments" {
  type = map(object({
    branch    = string
    state_key = string
  }))
  description = "Environments that live in this account, keyed by name (the GitHub environment too): the branch that deploys each and the key of its state in the bucket."

  validation {
    condition     = length(var.environments) > 0
    error_message = "Give at least one environment."
  }

  validation {
    condition     = length(distinct([for env in values(var.environments) : env.state_key])) == length(var.environments)
    error_message = "Every environment needs its own state_key; sharing one would let two roots overwrite each other's state."
  }

  validation {
    condition     = alltrue([for env in values(var.environments) : can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*\\.tfstate$", env.state_key)) && !startswith(env.state_key, "bootstrap/")])
    error_message = "state_key must be a relative object key ending in .tfstate, outside bootstrap/ (the bootstrap root's own state)."
  }
}

variable "create_github_oidc_provider" {
  type        = bool
  description = "Create the account's GitHub Actions OIDC provider. Set false if the account already has one (there can be only one per URL)."
  default     = true
}

variable "extra_tags" {
  type        = map(string)
  description = "Tags added to the standard Project, Environment and ManagedBy tags."
  default     = {}
}
