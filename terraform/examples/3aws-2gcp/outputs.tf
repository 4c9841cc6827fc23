output "rctl_servers" {
  description = "Every server, for terraform/tf-inventory.py: id, cloud, region, zone, address (what the others dial: rctl_address), private_ip, public_ip (what Ansible logs in to), voter, instance_id."
  value = [for s in concat(module.aws.servers, module.gcp.servers) : {
    id          = s.id
    cloud       = s.cloud
    region      = s.region
    zone        = s.zone
    address     = module.cross_cloud.advertise_addresses[s.id]
    private_ip  = s.private_ip
    public_ip   = s.public_ip
    voter       = s.voter
    instance_id = s.instance_id
  }]
}

output "rctl_agents" {
  description = "The node agents of var.agents, for terraform/tf-inventory.py (the rctl_agents group)."
  value       = var.agents
}

output "ssh_user" {
  description = "The admin user on every server (Ansible's ansible_user)."
  value       = "ubuntu"
}

output "rpc_sources" {
  description = "Who may reach port 50051, by cloud: {aws = {name = cidr}, gcp = {name = cidr}}."
  value       = module.cross_cloud.rpc_sources
}

output "ssh_sources" {
  description = "Who may reach SSH on every server (operator_cidrs)."
  value       = module.cross_cloud.ssh_sources
}
