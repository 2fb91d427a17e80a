# Production: one NAT gateway per zone, on-demand nodes, Kubernetes versions proven in
# staging. Replace account_id and github_repository with your own (docs/infrastructure.md).

region      = "eu-west-1"
account_id  = "222222222222"
environment = "production"

vpc_cidr           = "10.50.0.0/16"
availability_zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
single_nat_gateway = false

kubernetes_version = "1.35"

# The API endpoint is private. To reach it from outside the VPC, set
# endpoint_public_access = true and list the allowed CIDR blocks in public_access_cidrs.
endpoint_public_access = false
public_access_cidrs    = []

node_group = {
  instance_types = ["m6i.xlarge"]
  capacity_type  = "ON_DEMAND"
  min_size       = 3
  max_size       = 6
  desired_size   = 3
}

# IAM roles of the people who administer the cluster, e.g. the platform team's SSO role.
cluster_admin_principal_arns = []

github_repository      = "example-org/kvstore"
deploy_branch          = "main"
application_namespaces = ["kvstore", "monitoring"]
ecr_repository_name    = "kvstore"
