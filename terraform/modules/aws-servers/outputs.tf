output "servers" {
  description = "One object per server: id, cloud, region, zone, private_ip, public_ip, voter, instance_id. The addresses are known before the instances exist."
  value = [for i in range(var.server_count) : {
    id          = local.ids[i]
    cloud       = "aws"
    region      = local.region
    zone        = local.azs[local.server_az_index[i]]
    private_ip  = local.private_ips[i]
    public_ip   = aws_eip.server[i].public_ip
    voter       = local.voters[i]
    instance_id = aws_eip_association.server[i].instance_id
  }]
}

output "addresses" {
  description = "One object per server: id, private_ip, public_ip, taken from the allocated addresses alone (no instance), for firewall rules."
  value = [for i in range(var.server_count) : {
    id         = local.ids[i]
    private_ip = local.private_ips[i]
    public_ip  = aws_eip.server[i].public_ip
  }]
}

output "region" {
  description = "The AWS region of the servers."
  value       = local.region
}

output "vpc_id" {
  description = "The VPC the servers run in (the site-to-site VPN attaches to it)."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "The VPC's IPv4 range."
  value       = aws_vpc.this.cidr_block
}

output "route_table_ids" {
  description = "Route tables of the servers' subnets (the VPN gateway propagates the GCP routes into them)."
  value       = [aws_route_table.this.id]
}

output "security_group_id" {
  description = "The servers' security group; terraform/modules/cross-cloud adds its ingress rules."
  value       = aws_security_group.servers.id
}
