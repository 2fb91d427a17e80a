terraform {
  required_version = ">= 1.10.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0.0, < 7.0.0"
    }
  }

  # The bootstrap state lives in the bucket it creates. The very first apply runs with a
  # local backend (docs/infrastructure.md, "Bootstrapping an account") and is then
  # migrated here; bucket and region come from accounts/<account>.s3.tfbackend.
  backend "s3" {
    key          = "bootstrap/terraform.tfstate"
    use_lockfile = true
  }
}
