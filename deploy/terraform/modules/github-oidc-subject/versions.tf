terraform {
  # String formatting only: no provider, so `terraform test` runs offline.
  required_version = ">= 1.10.0, < 2.0.0"
}
