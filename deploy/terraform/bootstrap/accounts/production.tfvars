# The production AWS account. Replace account_id, the bucket name and the repository with
# your own before the first apply (docs/infrastructure.md).
region            = "eu-west-1"
account_id        = "222222222222"
state_bucket_name = "kvstore-tfstate-222222222222-eu-west-1"
github_repository = "example-org/kvstore"

environments = {
  production = {
    branch    = "main"
    state_key = "kvstore/production/terraform.tfstate"
  }
}
