# The staging AWS account. Replace account_id, the bucket name and the repository with
# your own before the first apply (docs/infrastructure.md).
region            = "eu-west-1"
account_id        = "111111111111"
state_bucket_name = "kvstore-tfstate-111111111111-eu-west-1"
github_repository = "example-org/kvstore"

environments = {
  staging = {
    branch    = "staging"
    state_key = "kvstore/staging/terraform.tfstate"
  }
}
