# cross-cloud: every ingress rule of the rctl servers in both clouds, side by
# side, plus an optional site-to-site VPN between the two networks.
#
# Port 50051/tcp (Raft, RPC and snapshots share it) is open on each cloud's
# servers to exactly:
#   * its own servers: their private /32s, and (without the VPN) their
#     public /32s, because servers dial each other's advertised public
#     address and such a connection arrives from the sender's public address;
#   * the other cloud's servers: their public /32s, or with the VPN their
#     private /32s (the tunnel keeps private source addresses);
#   * operator_cidrs and agent_cidrs.
# SSH (22/tcp) is open to operator_cidrs only. Nothing else, and never
# 0.0.0.0/0 (the variables refuse it). The two rule sets are built by the
# same expressions with the clouds swapped; terraform/terraform_test.go
# checks that they stay mirror images.
#
# The rules name addresses allocated on their own (aws_eip,
# google_compute_address: the servers modules' addresses outputs), never the
# instances, so nothing here depends on an instance and no cycle can form.

locals {
  rpc_port = 50051 # rctl_port in ansible/roles/rctl_common/defaults/main.yml

  # The address each server is dialled at by the others (rctl serve
  # --advertise, the Ansible host variable rctl_address).
  peer_address_kind = var.enable_vpn ? "private" : "public"
  advertise_addresses = merge(
    { for s in var.aws_servers : s.id => var.enable_vpn ? s.private_ip : s.public_ip },
    { for s in var.gcp_servers : s.id => var.enable_vpn ? s.private_ip : s.public_ip },
  )

  # A cloud's servers as its own firewall sees them.
  aws_servers_seen_by_aws = merge(
    { for s in var.aws_servers : "${s.id} private" => "${s.private_ip}/32" },
    { for s in var.aws_servers : "${s.id} public" => "${s.public_ip}/32" if !var.enable_vpn },
  )
  gcp_servers_seen_by_gcp = merge(
    { for s in var.gcp_servers : "${s.id} private" => "${s.private_ip}/32" },
    { for s in var.gcp_servers : "${s.id} public" => "${s.public_ip}/32" if !var.enable_vpn },
  )

  # A cloud's servers as the other cloud's firewall sees them.
  aws_servers_seen_by_gcp = { for s in var.aws_servers : "${s.id} ${local.peer_address_kind}" => "${var.enable_vpn ? s.private_ip : s.public_ip}/32" }
  gcp_servers_seen_by_aws = { for s in var.gcp_servers : "${s.id} ${local.peer_address_kind}" => "${var.enable_vpn ? s.private_ip : s.public_ip}/32" }

  # Operators and agents, the same on both clouds (a network listed in both
  # variables gets one rule).
  operator_sources = { for c in distinct(var.operator_cidrs) : "operators ${c}" => c }
  agent_sources    = { for c in distinct(var.agent_cidrs) : "agents ${c}" => c if !contains(var.operator_cidrs, c) }

  # Who may open port 50051, by cloud: name => CIDR. Mirror images.
  rpc_sources_aws = merge(local.aws_servers_seen_by_aws, local.gcp_servers_seen_by_aws, local.operator_sources, local.agent_sources)
  rpc_sources_gcp = merge(local.gcp_servers_seen_by_gcp, local.aws_servers_seen_by_gcp, local.operator_sources, local.agent_sources)

  ssh_sources = distinct(var.operator_cidrs)

  aws_tags = merge(var.tags, { role = "rctl-server" })
}

# --- AWS: one security group rule per source ---------------------------------

resource "aws_vpc_security_group_ingress_rule" "rpc" {
  for_each          = local.rpc_sources_aws
  security_group_id = var.aws_security_group_id
  description       = "rctl ${local.rpc_port}/tcp from ${each.key}"
  ip_protocol       = "tcp"
  from_port         = local.rpc_port
  to_port           = local.rpc_port
  cidr_ipv4         = each.value
  tags              = local.aws_tags
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  for_each          = toset(local.ssh_sources)
  security_group_id = var.aws_security_group_id
  description       = "SSH from operators ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = each.value
  tags              = local.aws_tags
}

# --- GCP: one firewall rule per port ---------------------------------------------
# A GCP rule without source ranges or tags admits 0.0.0.0/0: hence the counts.

resource "google_compute_firewall" "rpc" {
  count         = length(local.rpc_sources_gcp) > 0 ? 1 : 0
  project       = var.gcp_project
  name          = "${var.name}-rpc"
  description   = "rctl ${local.rpc_port}/tcp from the servers of both clouds, operators and agents (terraform/modules/cross-cloud)"
  network       = var.gcp_network_id
  direction     = "INGRESS"
  target_tags   = [var.gcp_target_tag]
  source_ranges = values(local.rpc_sources_gcp)

  allow {
    protocol = "tcp"
    ports    = [tostring(local.rpc_port)]
  }
}

resource "google_compute_firewall" "ssh" {
  count         = length(local.ssh_sources) > 0 ? 1 : 0
  project       = var.gcp_project
  name          = "${var.name}-ssh"
  description   = "SSH from operators (terraform/modules/cross-cloud)"
  network       = var.gcp_network_id
  direction     = "INGRESS"
  target_tags   = [var.gcp_target_tag]
  source_ranges = local.ssh_sources

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }
}

# --- Optional site-to-site VPN (enable_vpn) -----------------------------------------
# GCP HA VPN (2 interfaces) <-> 2 AWS VPN connections (2 tunnels each): 4
# IPsec tunnels (IKEv2), BGP over each; the AWS VPN gateway propagates the
# GCP subnet into the servers' route tables and the Cloud Router advertises
# it. Order: HA VPN gateway -> customer gateways (its interface addresses)
# -> VPN connections -> external gateway and tunnels (their addresses and
# keys).

resource "google_compute_ha_vpn_gateway" "aws" {
  count   = var.enable_vpn ? 1 : 0
  project = var.gcp_project
  region  = var.gcp_region
  name    = "${var.name}-to-aws"
  network = var.gcp_network_id
}

resource "google_compute_router" "vpn" {
  count   = var.enable_vpn ? 1 : 0
  project = var.gcp_project
  region  = var.gcp_region
  name    = "${var.name}-vpn"
  network = var.gcp_network_id

  bgp {
    asn            = var.vpn_gcp_asn
    advertise_mode = "DEFAULT" # the network's subnets
  }
}

resource "aws_vpn_gateway" "gcp" {
  count           = var.enable_vpn ? 1 : 0
  vpc_id          = var.aws_vpc_id
  amazon_side_asn = var.vpn_aws_asn
  tags            = merge(local.aws_tags, { Name = "${var.name}-to-gcp" })

  lifecycle {
    precondition {
      condition     = var.vpn_aws_asn != var.vpn_gcp_asn
      error_message = "vpn_aws_asn and vpn_gcp_asn must differ (eBGP between the clouds)."
    }
  }
}

resource "aws_vpn_gateway_route_propagation" "gcp" {
  count          = var.enable_vpn ? length(var.aws_route_table_ids) : 0
  vpn_gateway_id = aws_vpn_gateway.gcp[0].id
  route_table_id = var.aws_route_table_ids[count.index]
}

resource "aws_customer_gateway" "gcp" {
  count      = var.enable_vpn ? 2 : 0
  bgp_asn    = var.vpn_gcp_asn
  ip_address = google_compute_ha_vpn_gateway.aws[0].vpn_interfaces[count.index].ip_address
  type       = "ipsec.1"
  tags       = merge(local.aws_tags, { Name = "${var.name}-gcp-${count.index}" })
}

resource "aws_vpn_connection" "gcp" {
  count                = var.enable_vpn ? 2 : 0
  vpn_gateway_id       = aws_vpn_gateway.gcp[0].id
  customer_gateway_id  = aws_customer_gateway.gcp[count.index].id
  type                 = "ipsec.1"
  static_routes_only   = false
  tunnel1_ike_versions = ["ikev2"]
  tunnel2_ike_versions = ["ikev2"]
  tags                 = merge(local.aws_tags, { Name = "${var.name}-gcp-${count.index}" })
}

locals {
  # The 4 AWS tunnel endpoints, in the order of the external gateway's
  # interfaces 0-3; tunnels of connection i end on HA VPN interface i.
  aws_tunnels = flatten([for i, c in aws_vpn_connection.gcp : [
    {
      gcp_interface = i
      address       = c.tunnel1_address
      shared_secret = c.tunnel1_preshared_key
      gcp_inside_ip = c.tunnel1_cgw_inside_address
      aws_inside_ip = c.tunnel1_vgw_inside_address
    },
    {
      gcp_interface = i
      address       = c.tunnel2_address
      shared_secret = c.tunnel2_preshared_key
      gcp_inside_ip = c.tunnel2_cgw_inside_address
      aws_inside_ip = c.tunnel2_vgw_inside_address
    },
  ]])
}

resource "google_compute_external_vpn_gateway" "aws" {
  count           = var.enable_vpn ? 1 : 0
  project         = var.gcp_project
  name            = "${var.name}-aws"
  redundancy_type = "FOUR_IPS_REDUNDANCY"

  dynamic "interface" {
    for_each = local.aws_tunnels
    content {
      id         = interface.key
      ip_address = interface.value.address
    }
  }
}

resource "google_compute_vpn_tunnel" "aws" {
  count                           = var.enable_vpn ? 4 : 0
  project                         = var.gcp_project
  region                          = var.gcp_region
  name                            = "${var.name}-aws-${count.index}"
  vpn_gateway                     = google_compute_ha_vpn_gateway.aws[0].id
  vpn_gateway_interface           = local.aws_tunnels[count.index].gcp_interface
  peer_external_gateway           = google_compute_external_vpn_gateway.aws[0].id
  peer_external_gateway_interface = count.index
  shared_secret                   = local.aws_tunnels[count.index].shared_secret
  router                          = google_compute_router.vpn[0].id
  ike_version                     = 2
}

resource "google_compute_router_interface" "aws" {
  count      = var.enable_vpn ? 4 : 0
  project    = var.gcp_project
  region     = var.gcp_region
  name       = "${var.name}-aws-${count.index}"
  router     = google_compute_router.vpn[0].name
  ip_range   = "${local.aws_tunnels[count.index].gcp_inside_ip}/30"
  vpn_tunnel = google_compute_vpn_tunnel.aws[count.index].name
}

resource "google_compute_router_peer" "aws" {
  count                     = var.enable_vpn ? 4 : 0
  project                   = var.gcp_project
  region                    = var.gcp_region
  name                      = "${var.name}-aws-${count.index}"
  router                    = google_compute_router.vpn[0].name
  interface                 = google_compute_router_interface.aws[count.index].name
  peer_ip_address           = local.aws_tunnels[count.index].aws_inside_ip
  peer_asn                  = var.vpn_aws_asn
  advertised_route_priority = 100
}
