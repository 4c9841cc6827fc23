variable "name" {
  description = "Prefix of every resource name (VPC, security group, instances, volumes)."
  type        = string
  default     = "rctl"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}$", var.name))
    error_message = "name must be 1-20 characters: lower-case letters, digits and '-', starting with a letter."
  }
}

variable "id_prefix" {
  description = "Servers are named <id_prefix>-1, <id_prefix>-2, ...: their rctl node ids, host names and Ansible inventory names."
  type        = string
  default     = "aws"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,15}$", var.id_prefix))
    error_message = "id_prefix must be 1-16 characters: lower-case letters, digits and '-', starting with a letter."
  }
}

variable "server_count" {
  description = "Number of rctl servers in this cloud (3 for the 3+2 and 3+3 shapes in docs/operations.md)."
  type        = number
  default     = 3

  validation {
    condition     = var.server_count >= 1 && var.server_count <= 7 && floor(var.server_count) == var.server_count
    error_message = "server_count must be a whole number from 1 to 7."
  }
}

variable "nonvoter_count" {
  description = "How many of this cloud's servers (the last ones) are Raft non-voters: they replicate the log but never vote or lead. Must be less than server_count."
  type        = number
  default     = 0

  validation {
    condition     = var.nonvoter_count >= 0 && var.nonvoter_count <= 6 && floor(var.nonvoter_count) == var.nonvoter_count
    error_message = "nonvoter_count must be a whole number from 0 to 6 (and less than server_count)."
  }
}

variable "instance_type" {
  description = "EC2 instance type of the servers. A Nitro type (t3, m5, ...): the data disk is found by its NVMe serial."
  type        = string
  default     = "t3.medium"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must look like an EC2 instance type, e.g. t3.medium."
  }
}

variable "data_disk_size_gb" {
  description = "Size in GB of each server's EBS gp3 data disk, mounted at /var/lib/rctl (Raft log, stable store, snapshots)."
  type        = number
  default     = 50

  validation {
    condition     = var.data_disk_size_gb >= 20 && var.data_disk_size_gb <= 16384 && floor(var.data_disk_size_gb) == var.data_disk_size_gb
    error_message = "data_disk_size_gb must be a whole number from 20 to 16384."
  }
}

variable "data_disk_iops" {
  description = "Provisioned IOPS of the gp3 data disk (3000 is gp3's included baseline)."
  type        = number
  default     = 3000

  validation {
    condition     = var.data_disk_iops >= 3000 && var.data_disk_iops <= 16000
    error_message = "data_disk_iops must be from 3000 to 16000 (gp3)."
  }
}

variable "data_disk_throughput_mibps" {
  description = "Provisioned throughput of the gp3 data disk in MiB/s (125 is gp3's included baseline)."
  type        = number
  default     = 125

  validation {
    condition     = var.data_disk_throughput_mibps >= 125 && var.data_disk_throughput_mibps <= 1000
    error_message = "data_disk_throughput_mibps must be from 125 to 1000 (gp3)."
  }
}

variable "root_disk_size_gb" {
  description = "Size in GB of each server's root (boot) disk."
  type        = number
  default     = 20

  validation {
    condition     = var.root_disk_size_gb >= 8 && var.root_disk_size_gb <= 1024 && floor(var.root_disk_size_gb) == var.root_disk_size_gb
    error_message = "root_disk_size_gb must be a whole number from 8 to 1024."
  }
}

variable "vpc_cidr" {
  description = "IPv4 range of the VPC this module creates (/16 to /24). Must not overlap the GCP subnet when the site-to-site VPN is used."
  type        = string
  default     = "10.10.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && can(regex("^[0-9.]+/(1[6-9]|2[0-4])$", var.vpc_cidr))
    error_message = "vpc_cidr must be an IPv4 CIDR with a prefix from /16 to /24, e.g. 10.10.0.0/16."
  }
}

variable "availability_zones" {
  description = "Availability zones to spread the servers over, one subnet each (round robin). Empty: the region's first three available zones."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.availability_zones) <= 6
    error_message = "availability_zones takes at most 6 zones."
  }
}

variable "ami_id" {
  description = "AMI of the servers. null: the newest Canonical Ubuntu 22.04 LTS (jammy) amd64 image at the first apply (later AMI releases do not replace running servers)."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]{8,17}$", coalesce(var.ami_id, "ami-00000000")))
    error_message = "ami_id must be null or an AMI id like ami-0123456789abcdef0."
  }
}

variable "ssh_public_key" {
  description = "OpenSSH public key installed for the admin user (ubuntu) of every server; Ansible logs in with it."
  type        = string

  validation {
    condition     = can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( .*)?$", var.ssh_public_key))
    error_message = "ssh_public_key must be one OpenSSH public key line (ssh-ed25519, ssh-rsa or ecdsa-sha2-*)."
  }
}

variable "tags" {
  description = "Extra tags on every resource. role, cloud and region are always set by the module."
  type        = map(string)
  default     = {}
}
