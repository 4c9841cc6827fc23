variable "name" {
  description = "Prefix of every resource name (firewall rules, VPN gateways, tunnels)."
  type        = string
  default     = "rctl"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}$", var.name))
    error_message = "name must be 1-20 characters: lower-case letters, digits and '-', starting with a letter."
  }
}

variable "aws_servers" {
  description = "The AWS servers' addresses: the addresses output of terraform/modules/aws-servers (id, private_ip, public_ip)."
  type = list(object({
    id         = string
    private_ip = string
    public_ip  = string
  }))

  validation {
    condition     = length(var.aws_servers) >= 1 && length(var.aws_servers) <= 7
    error_message = "aws_servers must list 1 to 7 servers."
  }
}

variable "gcp_servers" {
  description = "The GCP servers' addresses: the addresses output of terraform/modules/gcp-servers (id, private_ip, public_ip)."
  type = list(object({
    id         = string
    private_ip = string
    public_ip  = string
  }))

  validation {
    condition     = length(var.gcp_servers) >= 1 && length(var.gcp_servers) <= 7
    error_message = "gcp_servers must list 1 to 7 servers."
  }
}

variable "aws_security_group_id" {
  description = "The AWS servers' security group (security_group_id output of aws-servers); the AWS rules go into it."
  type        = string
}

variable "aws_vpc_id" {
  description = "The AWS servers' VPC (vpc_id output of aws-servers); the VPN gateway attaches to it when enable_vpn is true."
  type        = string
}

variable "aws_route_table_ids" {
  description = "The AWS servers' route tables (route_table_ids output of aws-servers); with enable_vpn the VPN gateway propagates the GCP routes into them."
  type        = list(string)
}

variable "gcp_project" {
  description = "The GCP project of the servers."
  type        = string
}

variable "gcp_region" {
  description = "The GCP region of the servers (region output of gcp-servers); the HA VPN gateway and its router live there."
  type        = string
}

variable "gcp_network_id" {
  description = "The GCP servers' VPC network (network_id output of gcp-servers)."
  type        = string
}

variable "gcp_target_tag" {
  description = "The network tag of the GCP servers (target_tag output of gcp-servers); the GCP rules apply to instances carrying it."
  type        = string
}

variable "operator_cidrs" {
  description = "IPv4 networks of the operators (and of the Ansible control host): they may SSH to every server and reach port 50051. At least one; 0.0.0.0/0 is refused."
  type        = list(string)

  validation {
    condition     = length(var.operator_cidrs) >= 1 && length(var.operator_cidrs) <= 50
    error_message = "operator_cidrs must list 1 to 50 networks: without one, no operator or Ansible could reach the servers."
  }

  validation {
    condition     = alltrue([for c in var.operator_cidrs : can(cidrnetmask(c)) && can(regex("^[0-9.]+/([1-9]|[12][0-9]|3[0-2])$", c))])
    error_message = "operator_cidrs must be IPv4 CIDRs with a prefix from /1 to /32 (0.0.0.0/0 is refused), e.g. 203.0.113.0/24."
  }
}

variable "agent_cidrs" {
  description = "IPv4 networks of the worker VMs running the node agent: they may reach port 50051 (never SSH). 0.0.0.0/0 is refused."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.agent_cidrs) <= 50
    error_message = "agent_cidrs takes at most 50 networks."
  }

  validation {
    condition     = alltrue([for c in var.agent_cidrs : can(cidrnetmask(c)) && can(regex("^[0-9.]+/([1-9]|[12][0-9]|3[0-2])$", c))])
    error_message = "agent_cidrs must be IPv4 CIDRs with a prefix from /1 to /32 (0.0.0.0/0 is refused), e.g. 10.30.0.0/16."
  }
}

variable "enable_vpn" {
  description = "Connect the clouds with a site-to-site VPN (AWS VPN gateway + customer gateways, GCP HA VPN + Cloud Router, 4 IPsec tunnels with BGP). Servers then talk over private addresses and the other cloud is admitted by its servers' private /32s; false: over public addresses, admitted by their public /32s."
  type        = bool
  default     = false
}

variable "vpn_aws_asn" {
  description = "Private BGP ASN of the AWS VPN gateway (enable_vpn)."
  type        = number
  default     = 64512

  validation {
    condition     = (var.vpn_aws_asn >= 64512 && var.vpn_aws_asn <= 65534) || (var.vpn_aws_asn >= 4200000000 && var.vpn_aws_asn <= 4294967294)
    error_message = "vpn_aws_asn must be a private ASN: 64512-65534 or 4200000000-4294967294."
  }
}

variable "vpn_gcp_asn" {
  description = "Private BGP ASN of the GCP Cloud Router (enable_vpn); must differ from vpn_aws_asn."
  type        = number
  default     = 65010

  validation {
    condition     = (var.vpn_gcp_asn >= 64512 && var.vpn_gcp_asn <= 65534) || (var.vpn_gcp_asn >= 4200000000 && var.vpn_gcp_asn <= 4294967294)
    error_message = "vpn_gcp_asn must be a private ASN: 64512-65534 or 4200000000-4294967294."
  }
}

variable "tags" {
  description = "Extra AWS tags on the rules and VPN resources."
  type        = map(string)
  default     = {}
}
