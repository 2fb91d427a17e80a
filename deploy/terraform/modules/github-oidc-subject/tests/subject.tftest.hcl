# Runs offline: the module has no provider. `terraform test` from the module directory.

variables {
  github_repository  = "example-org/kvstore"
  github_environment = "production"
  branch             = "main"
}

run "deployment_subject_pins_repository_environment_and_branch" {
  command = plan

  assert {
    condition     = output.subject == "repo:example-org/kvstore:environment:production:ref:refs/heads/main"
    error_message = "The deployment subject must name the repository, the environment and the branch."
  }

  assert {
    condition     = output.condition_test == "StringEquals"
    error_message = "A deployment role must match its subject exactly."
  }

  assert {
    condition     = !strcontains(output.subject, "*")
    error_message = "A deployment subject must not contain wildcards."
  }
}

run "pull_request_plan_subject_is_limited_to_the_repository" {
  command = plan

  variables {
    github_environment = null
    branch             = null
    pull_request_plan  = true
  }

  assert {
    condition     = output.subject == "repo:example-org/kvstore:pull_request:ref:refs/pull/*/merge"
    error_message = "The plan subject must only match pull requests of this repository."
  }

  assert {
    condition     = output.condition_test == "StringLike"
    error_message = "The plan subject needs StringLike for the pull request number."
  }
}

run "rejects_a_wildcard_repository" {
  command = plan

  variables {
    github_repository = "example-org/*"
  }

  expect_failures = [var.github_repository]
}

run "rejects_a_full_ref_as_branch" {
  command = plan

  variables {
    branch = "refs/heads/main"
  }

  expect_failures = [var.branch]
}

run "rejects_a_wildcard_branch" {
  command = plan

  variables {
    branch = "release/*"
  }

  expect_failures = [var.branch]
}

run "deployment_role_needs_environment_and_branch" {
  command = plan

  variables {
    branch = null
  }

  expect_failures = [var.pull_request_plan]
}

run "plan_role_must_not_name_a_branch" {
  command = plan

  variables {
    pull_request_plan = true
  }

  expect_failures = [var.pull_request_plan]
}
