output "advertise_addresses" {
  description = "Server id => the address the other servers, agents and operators dial it at (public, or private with enable_vpn): rctl serve --advertise, the Ansible host variable rctl_address."
  value       = local.advertise_addresses
}

output "rpc_port" {
  description = "The one port of every server (Raft, RPC, snapshots)."
  value       = local.rpc_port
}

output "rpc_sources" {
  description = "Who may reach port 50051, by cloud: {aws = {name = cidr}, gcp = {name = cidr}}. The two maps are mirror images."
  value = {
    aws = local.rpc_sources_aws
    gcp = local.rpc_sources_gcp
  }
}

output "ssh_sources" {
  description = "The networks that may reach SSH (22/tcp) on every server: operator_cidrs."
  value       = local.ssh_sources
}

output "vpn_tunnels" {
  description = "With enable_vpn: the GCP VPN tunnels' names (4); empty otherwise."
  value       = google_compute_vpn_tunnel.aws[*].name
}
