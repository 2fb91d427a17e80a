# A customer managed key with yearly rotation. The key policy delegates to IAM (the account
# root statement), so who may use the key is decided by IAM policies on the roles; the only
# service statement is the optional one CloudWatch Logs needs, which IAM cannot express.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

data "aws_iam_policy_document" "this" {
  #checkov:skip=CKV_AWS_109:A key policy's Resource "*" means this key only; the statement delegates to IAM in this account, which AWS requires so the key stays manageable.
  #checkov:skip=CKV_AWS_111:Same statement: key-policy Resource "*" is this key, granted to the own account root so IAM policies decide.
  #checkov:skip=CKV_AWS_356:In a key policy Resource "*" always means the key the policy is attached to.
  statement {
    sid       = "DelegateToIamInThisAccount"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  dynamic "statement" {
    for_each = var.allow_cloudwatch_logs ? [1] : []

    content {
      sid = "CloudWatchLogsOfThisAccount"
      actions = [
        "kms:Encrypt*",
        "kms:Decrypt*",
        "kms:ReEncrypt*",
        "kms:GenerateDataKey*",
        "kms:Describe*",
      ]
      resources = ["*"]

      principals {
        type        = "Service"
        identifiers = ["logs.${data.aws_region.current.region}.amazonaws.com"]
      }

      condition {
        test     = "ArnLike"
        variable = "kms:EncryptionContext:aws:logs:arn"
        values   = ["arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:log-group:*"]
      }
    }
  }
}

resource "aws_kms_key" "this" {
  description             = var.description
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = var.deletion_window_in_days
  policy                  = data.aws_iam_policy_document.this.json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.alias}"
  target_key_id = aws_kms_key.this.key_id
}
