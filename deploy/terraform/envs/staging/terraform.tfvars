# Staging: one NAT gateway, Spot nodes, the next Kubernetes version first.
# Replace account_id and github_repository with your own (docs/infrastructure.md).

region      = "eu-west-1"
account_id  = "111111111111"
environment = "staging"

vpc_cidr           = "10.40.0.0/16"
availability_zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
single_nat_gateway = true

kubernetes_version = "1.35"

# The API endpoint is private. To reach it from outside the VPC, set
# endpoint_public_access = true and list the allowed CIDR blocks in public_access_cidrs.
endpoint_public_access = false
public_access_cidrs    = []

node_group = {
  instance_types = ["m6i.large", "m6a.large", "m5.large"]
  capacity_type  = "SPOT"
  min_size       = 3
  max_size       = 4
  desired_size   = 3
}

# IAM roles of the people who administer the cluster, e.g. the platform team's SSO role.
cluster_admin_principal_arns = []

github_repository      = "example-org/kvstore"
deploy_branch          = "staging"
application_namespaces = ["kvstore", "monitoring"]
ecr_repository_name    = "kvstore"
