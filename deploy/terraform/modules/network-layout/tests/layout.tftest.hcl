# Runs offline: the module has no provider. `terraform test` from the module directory.

variables {
  vpc_cidr           = "10.40.0.0/16"
  availability_zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
  single_nat_gateway = false
}

run "three_zones_get_large_private_and_small_public_subnets" {
  command = plan

  assert {
    condition = output.private_subnet_cidrs == {
      "eu-west-1a" = "10.40.0.0/18"
      "eu-west-1b" = "10.40.64.0/18"
      "eu-west-1c" = "10.40.128.0/18"
    }
    error_message = "Private subnets must be the first three /18 slices of the /16."
  }

  assert {
    condition = output.public_subnet_cidrs == {
      "eu-west-1a" = "10.40.192.0/22"
      "eu-west-1b" = "10.40.196.0/22"
      "eu-west-1c" = "10.40.200.0/22"
    }
    error_message = "Public subnets must be /22 blocks carved from the last /18 slice."
  }
}

run "production_layout_has_one_nat_gateway_per_zone" {
  command = plan

  assert {
    condition     = output.nat_gateway_zones == tolist(["eu-west-1a", "eu-west-1b", "eu-west-1c"])
    error_message = "Without single_nat_gateway every zone needs its own NAT gateway."
  }

  assert {
    condition     = alltrue([for zone, egress in output.private_egress_zone : zone == egress])
    error_message = "Each private subnet must route through the NAT gateway of its own zone."
  }
}

run "staging_layout_shares_one_nat_gateway" {
  command = plan

  variables {
    single_nat_gateway = true
  }

  assert {
    condition     = output.nat_gateway_zones == tolist(["eu-west-1a"])
    error_message = "single_nat_gateway must create exactly one NAT gateway, in the first zone."
  }

  assert {
    condition     = toset(values(output.private_egress_zone)) == toset(["eu-west-1a"])
    error_message = "Every private subnet must route through the single NAT gateway."
  }
}

run "four_zones_switch_to_eighths" {
  command = plan

  variables {
    vpc_cidr           = "10.8.0.0/20"
    availability_zones = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"]
  }

  assert {
    condition     = output.private_subnet_cidrs["us-east-1d"] == "10.8.6.0/23"
    error_message = "With more than three zones the VPC is cut into eighths."
  }

  assert {
    condition     = output.public_subnet_cidrs["us-east-1a"] == "10.8.14.0/27"
    error_message = "Public subnets come from the last eighth."
  }
}

run "subnets_never_overlap" {
  command = plan

  assert {
    condition = length(distinct(concat(
      [for cidr in values(output.private_subnet_cidrs) : cidrhost(cidr, 0)],
      [for cidr in values(output.public_subnet_cidrs) : cidrhost(cidr, 0)],
    ))) == 6
    error_message = "Every subnet must start at a distinct address."
  }
}

run "rejects_a_vpc_that_is_too_small" {
  command = plan

  variables {
    vpc_cidr = "10.40.0.0/24"
  }

  expect_failures = [var.vpc_cidr]
}

run "rejects_a_cidr_that_is_not_a_network_address" {
  command = plan

  variables {
    vpc_cidr = "10.40.3.0/16"
  }

  expect_failures = [var.vpc_cidr]
}

run "rejects_a_single_zone" {
  command = plan

  variables {
    availability_zones = ["eu-west-1a"]
  }

  expect_failures = [var.availability_zones]
}

run "rejects_repeated_zones" {
  command = plan

  variables {
    availability_zones = ["eu-west-1a", "eu-west-1a", "eu-west-1b"]
  }

  expect_failures = [var.availability_zones]
}
