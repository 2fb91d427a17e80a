terraform {
  # Pure arithmetic over the inputs: no provider, so `terraform init -backend=false`
  # and `terraform test` run offline.
  required_version = ">= 1.10.0, < 2.0.0"
}
