provider "aws" {
  region = var.region

  # Refuse to run against any other account, whatever credentials are active.
  allowed_account_ids = [var.account_id]
}
