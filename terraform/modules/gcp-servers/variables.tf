variable "name" {
  description = "Prefix of every resource name (network, subnet, addresses, disks, instances)."
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
  default     = "gcp"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,15}$", var.id_prefix))
    error_message = "id_prefix must be 1-16 characters: lower-case letters, digits and '-', starting with a letter."
  }
}

variable "project" {
  description = "GCP project id the servers are created in."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project))
    error_message = "project must be a GCP project id (6-30 characters: lower-case letters, digits, '-')."
  }
}

variable "region" {
  description = "GCP region of the servers, e.g. europe-west1."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a GCP region name such as europe-west1."
  }
}

variable "zones" {
  description = "Zones to spread the servers over (round robin). Empty: the region's first three zones that are up."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.zones) <= 6
    error_message = "zones takes at most 6 zones."
  }
}

variable "server_count" {
  description = "Number of rctl servers in this cloud (2 for 3+2; 3 for 3+3, where the third is best a non-voter)."
  type        = number
  default     = 2

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

variable "machine_type" {
  description = "Compute Engine machine type of the servers."
  type        = string
  default     = "n1-standard-2"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]*-[a-z0-9-]+$", var.machine_type))
    error_message = "machine_type must look like a Compute Engine machine type, e.g. n1-standard-2."
  }
}

variable "data_disk_size_gb" {
  description = "Size in GB of each server's pd-ssd data disk, mounted at /var/lib/rctl (Raft log, stable store, snapshots)."
  type        = number
  default     = 50

  validation {
    condition     = var.data_disk_size_gb >= 20 && var.data_disk_size_gb <= 65536 && floor(var.data_disk_size_gb) == var.data_disk_size_gb
    error_message = "data_disk_size_gb must be a whole number from 20 to 65536."
  }
}

variable "root_disk_size_gb" {
  description = "Size in GB of each server's boot disk."
  type        = number
  default     = 20

  validation {
    condition     = var.root_disk_size_gb >= 10 && var.root_disk_size_gb <= 1024 && floor(var.root_disk_size_gb) == var.root_disk_size_gb
    error_message = "root_disk_size_gb must be a whole number from 10 to 1024."
  }
}

variable "subnet_cidr" {
  description = "IPv4 range of the subnet this module creates (/16 to /28). Must not overlap the AWS VPC when the site-to-site VPN is used."
  type        = string
  default     = "10.20.0.0/20"

  validation {
    condition     = can(cidrnetmask(var.subnet_cidr)) && can(regex("^[0-9.]+/(1[6-9]|2[0-8])$", var.subnet_cidr))
    error_message = "subnet_cidr must be an IPv4 CIDR with a prefix from /16 to /28, e.g. 10.20.0.0/20."
  }
}

variable "image" {
  description = "Boot image of the servers (Ubuntu 22.04 LTS by default; later image releases do not replace running servers)."
  type        = string
  default     = "ubuntu-os-cloud/ubuntu-2204-lts"

  validation {
    condition     = length(var.image) > 0
    error_message = "image must not be empty."
  }
}

variable "ssh_user" {
  description = "Admin user created on every server for ssh_public_key (the same name as on AWS's Ubuntu images, so one Ansible user fits both clouds)."
  type        = string
  default     = "ubuntu"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.ssh_user))
    error_message = "ssh_user must be a valid Linux user name."
  }
}

variable "ssh_public_key" {
  description = "OpenSSH public key installed for ssh_user on every server; Ansible logs in with it."
  type        = string

  validation {
    condition     = can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( .*)?$", var.ssh_public_key))
    error_message = "ssh_public_key must be one OpenSSH public key line (ssh-ed25519, ssh-rsa or ecdsa-sha2-*)."
  }
}

variable "labels" {
  description = "Extra labels on every resource that takes labels. role, cloud and region are always set by the module."
  type        = map(string)
  default     = {}
}
