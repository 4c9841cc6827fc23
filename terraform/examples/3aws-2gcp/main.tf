# 3 AWS + 2 GCP rctl servers: five voters, quorum 3. The AWS side alone is a
# quorum, so it keeps writing if GCP (or the link) is lost, and with the
# leader in AWS a commit needs only intra-cloud round trips (~25 ms instead
# of ~243 ms). docs/operations.md, "Quorum geometry across two clouds".
#
# Which ports are open to whom (terraform/modules/cross-cloud):
#   50051/tcp on every server: the 5 servers' /32s (public ones, or the
#             private ones with enable_vpn), each cloud's own servers'
#             private /32s, operator_cidrs, agent_cidrs.
#   22/tcp on every server: operator_cidrs.
#   Nothing else; never 0.0.0.0/0. `terraform output rpc_sources` lists
#   every rule's source by name.
#
# Then: docs/deploy.md (terraform output -json | terraform/tf-inventory.py,
# ansible-playbook site.yml).

provider "aws" {
  region = var.aws_region
}

provider "google" {
  project = var.gcp_project
  region  = var.gcp_region
}

locals {
  aws_server_count = 3
  gcp_server_count = 2
}

module "aws" {
  source = "../../modules/aws-servers"

  name              = var.name
  server_count      = local.aws_server_count
  instance_type     = var.aws_instance_type
  data_disk_size_gb = var.data_disk_size_gb
  vpc_cidr          = var.aws_vpc_cidr
  ssh_public_key    = var.ssh_public_key
}

module "gcp" {
  source = "../../modules/gcp-servers"

  name              = var.name
  project           = var.gcp_project
  region            = var.gcp_region
  server_count      = local.gcp_server_count
  machine_type      = var.gcp_machine_type
  data_disk_size_gb = var.data_disk_size_gb
  subnet_cidr       = var.gcp_subnet_cidr
  ssh_public_key    = var.ssh_public_key
}

module "cross_cloud" {
  source = "../../modules/cross-cloud"

  name = var.name
  # Addresses only (allocated before the instances): no dependency cycle.
  aws_servers           = module.aws.addresses
  gcp_servers           = module.gcp.addresses
  aws_security_group_id = module.aws.security_group_id
  aws_vpc_id            = module.aws.vpc_id
  aws_route_table_ids   = module.aws.route_table_ids
  gcp_project           = var.gcp_project
  gcp_region            = module.gcp.region
  gcp_network_id        = module.gcp.network_id
  gcp_target_tag        = module.gcp.target_tag
  operator_cidrs        = var.operator_cidrs
  agent_cidrs           = var.agent_cidrs
  enable_vpn            = var.enable_vpn
}
