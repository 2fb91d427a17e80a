# Runs offline: the module has no provider. `terraform test` from the module directory.

variables {
  environment = "staging"
}

run "names_share_the_environment_prefix" {
  command = plan

  assert {
    condition     = output.prefix == "kvstore-staging"
    error_message = "The prefix must be <project>-<environment>."
  }

  assert {
    condition     = alltrue([for name in values(output.names) : startswith(name, "kvstore-staging")])
    error_message = "Every name must start with the prefix, or the infrastructure role's IAM scope would not cover it."
  }

  assert {
    condition     = length(distinct([output.names.application_role, output.names.infrastructure_role, output.names.plan_role])) == 3
    error_message = "The application, infrastructure and plan roles must be three different roles."
  }

  assert {
    condition     = length(distinct(values(output.names))) == length(output.names)
    error_message = "No two resources of an environment may share a name."
  }

  assert {
    condition     = alltrue([for name in values(output.names) : length(name) <= 64])
    error_message = "IAM role names are limited to 64 characters."
  }
}

run "standard_tags_win_over_extra_tags" {
  command = plan

  variables {
    extra_tags = { Environment = "spoofed", CostCentre = "platform" }
  }

  assert {
    condition     = output.tags.Environment == "staging" && output.tags.CostCentre == "platform"
    error_message = "extra_tags may add tags but never replace Environment."
  }
}

run "longest_names_fit_iam_limits" {
  command = plan

  variables {
    project     = "abcdefghijkl"
    environment = "abcdefghijklmnop"
  }

  assert {
    condition     = alltrue([for name in values(output.names) : length(name) <= 64])
    error_message = "Even the longest allowed project and environment must give valid IAM role names."
  }
}

run "rejects_uppercase_environment" {
  command = plan

  variables {
    environment = "Production"
  }

  expect_failures = [var.environment]
}

run "rejects_reserved_tag_keys" {
  command = plan

  variables {
    extra_tags = { "aws:owner" = "x" }
  }

  expect_failures = [var.extra_tags]
}
