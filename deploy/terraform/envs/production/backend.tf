# This environment's state: its own object in the state bucket of its account, locked
# with an S3 lock file (<key>.tflock). The bucket's default encryption (SSE-KMS) applies.
terraform {
  backend "s3" {
    bucket       = "kvstore-tfstate-222222222222-eu-west-1"
    key          = "kvstore/production/terraform.tfstate"
    region       = "eu-west-1"
    use_lockfile = true
  }
}
