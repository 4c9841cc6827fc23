output "servers" {
  description = "One object per server: id, cloud, region, zone, private_ip, public_ip, voter, instance_id. The addresses are known before the instances exist."
  value = [for i in range(var.server_count) : {
    id          = local.ids[i]
    cloud       = "gcp"
    region      = var.region
    zone        = local.server_zone[i]
    private_ip  = google_compute_address.internal[i].address
    public_ip   = google_compute_address.external[i].address
    voter       = local.voters[i]
    instance_id = google_compute_instance.server[i].instance_id
  }]
}

output "addresses" {
  description = "One object per server: id, private_ip, public_ip, taken from the allocated addresses alone (no instance), for firewall rules."
  value = [for i in range(var.server_count) : {
    id         = local.ids[i]
    private_ip = google_compute_address.internal[i].address
    public_ip  = google_compute_address.external[i].address
  }]
}

output "region" {
  description = "The GCP region of the servers."
  value       = var.region
}

output "network_id" {
  description = "The servers' VPC network (the firewall rules and the HA VPN attach to it)."
  value       = google_compute_network.this.id
}

output "network_name" {
  description = "Name of the servers' VPC network."
  value       = google_compute_network.this.name
}

output "subnet_cidr" {
  description = "The servers' subnet range."
  value       = google_compute_subnetwork.this.ip_cidr_range
}

output "target_tag" {
  description = "Network tag on every server; the cross-cloud firewall rules target it."
  value       = local.target_tag
}
