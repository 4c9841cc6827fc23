variable "name" {
  description = "Prefix of every resource name in both clouds."
  type        = string
  default     = "rctl"
}

variable "aws_region" {
  description = "AWS region of the three AWS servers."
  type        = string
  default     = "us-east-1"
}

variable "gcp_project" {
  description = "GCP project id of the GCP servers."
  type        = string
}

variable "gcp_region" {
  description = "GCP region of the GCP servers."
  type        = string
  default     = "europe-west1"
}

variable "ssh_public_key" {
  description = "OpenSSH public key of the admin user (ubuntu) on every server; Ansible logs in with it."
  type        = string
}

variable "operator_cidrs" {
  description = "IPv4 networks of the operators and the Ansible control host: SSH and port 50051 on every server. Required; 0.0.0.0/0 is refused."
  type        = list(string)
}

variable "agent_cidrs" {
  description = "IPv4 networks of the worker VMs running the node agent: port 50051 on every server. 0.0.0.0/0 is refused."
  type        = list(string)
  default     = []
}

variable "agents" {
  description = "Node agents for the Ansible inventory (rctl_agents group): on a server (id of that server, no address) or on a worker VM (its own id, its address, cloud and region). Their networks still belong in agent_cidrs."
  type = list(object({
    id      = string
    address = optional(string)
    cloud   = optional(string)
    region  = optional(string)
  }))
  default = []

  validation {
    condition     = alltrue([for a in var.agents : can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$", a.id))])
    error_message = "Every agent id must be 1-63 characters: letters, digits, '.', '_', '-'."
  }
}

variable "enable_vpn" {
  description = "Join the clouds with a site-to-site VPN (AWS VPN gateway, GCP HA VPN, 4 tunnels, BGP); the servers then talk over private addresses. false: over public addresses, each cloud admitting the other's server /32s."
  type        = bool
  default     = false
}

variable "aws_instance_type" {
  description = "EC2 instance type of the AWS servers."
  type        = string
  default     = "t3.medium"
}

variable "gcp_machine_type" {
  description = "Compute Engine machine type of the GCP servers."
  type        = string
  default     = "n1-standard-2"
}

variable "data_disk_size_gb" {
  description = "Size in GB of every server's data disk (gp3 on AWS, pd-ssd on GCP), mounted at /var/lib/rctl."
  type        = number
  default     = 50
}

variable "aws_vpc_cidr" {
  description = "IPv4 range of the AWS VPC (must not overlap gcp_subnet_cidr)."
  type        = string
  default     = "10.10.0.0/16"
}

variable "gcp_subnet_cidr" {
  description = "IPv4 range of the GCP subnet (must not overlap aws_vpc_cidr)."
  type        = string
  default     = "10.20.0.0/20"
}

variable "gcp_nonvoters" {
  description = "How many GCP servers (the last ones) are Raft non-voters: 1 (the default) keeps five voters, so the AWS side keeps a quorum in a cloud split; 0 makes all six vote, and then NO side can write during a cloud split (quorum 4 of 6)."
  type        = number
  default     = 1

  validation {
    condition     = var.gcp_nonvoters == 0 || var.gcp_nonvoters == 1
    error_message = "gcp_nonvoters must be 1 (recommended) or 0 (six voters: no writes during a cloud split)."
  }
}
