# 3 AWS + 3 GCP rctl servers, the sixth (gcp-3) a Raft non-voter by default.
#
# WARNING: quorum geometry (docs/operations.md, "Quorum geometry across two
# clouds"). Six voters, 3 AWS + 3 GCP, need a quorum of 4, which neither
# side holds alone: losing either cloud, or the link between them, stops
# all writes. The sixth server is therefore a non-voter (gcp_nonvoters = 1):
# it replicates the log, can serve stale reads and can be promoted later,
# while the five voters keep the 3+2 geometry:
#
#   | voters                          | quorum | lose AWS  | lose GCP   | cloud split     |
#   | 3 AWS + 3 GCP                   | 4      | no writes | no writes  | no side writes  |
#   | 3 AWS + 2 GCP                   | 3      | no writes | AWS writes | AWS side writes |
#   | 3 AWS + 2 GCP + 1 GCP non-voter | 3      | no writes | AWS writes | AWS side writes |
#
# Setting gcp_nonvoters = 0 makes all six vote: only do that knowingly.
#
# Ansible: the non-voter is listed in the inventory with rctl_nonvoter: true
# in the group rctl_nonvoters, not in rctl_servers (whose hosts bootstrap the
# cluster as voters); site.yml starts it once the voters are healthy, and it
# joins through them with `rctl serve --join ... --nonvoter` (docs/deploy.md).
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
  gcp_server_count = 3
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
  nonvoter_count    = var.gcp_nonvoters
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

# A plan-time warning (not an error) when all six servers vote.
check "quorum_geometry" {
  assert {
    condition     = var.gcp_nonvoters == 1
    error_message = "All six servers vote (3 AWS + 3 GCP, quorum 4): neither cloud alone holds a quorum, so losing either cloud or the link between them stops all writes. gcp_nonvoters = 1 keeps five voters (docs/operations.md, \"Quorum geometry across two clouds\")."
  }
}
