# aws-servers: rctl servers in one AWS region.
#
# Creates a VPC with one public subnet per availability zone, a security
# group with NO ingress rules (terraform/modules/cross-cloud adds the 50051
# and SSH rules for both clouds in one place), and per server: an Elastic IP
# allocated before the instance (so firewall rules elsewhere can name it
# without depending on the instance), a fixed private address, an encrypted
# gp3 data disk that outlives the instance, and the instance itself, whose
# cloud-init formats the data disk once and mounts it at /var/lib/rctl.

data "aws_region" "current" {}

data "aws_availability_zones" "available" {
  state = "available"
}

data "aws_ami" "ubuntu" {
  count       = var.ami_id == null ? 1 : 0
  most_recent = true
  owners      = ["099720109477"] # Canonical

  filter {
    name   = "name"
    values = ["ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"]
  }

  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }
}

locals {
  region = data.aws_region.current.name
  azs    = length(var.availability_zones) > 0 ? var.availability_zones : slice(data.aws_availability_zones.available.names, 0, min(3, length(data.aws_availability_zones.available.names)))
  ami_id = var.ami_id != null ? var.ami_id : data.aws_ami.ubuntu[0].id

  tags = merge(var.tags, {
    role   = "rctl-server"
    cloud  = "aws"
    region = local.region
  })

  ids          = [for i in range(var.server_count) : "${var.id_prefix}-${i + 1}"]
  subnet_cidrs = [for z in range(length(local.azs)) : cidrsubnet(var.vpc_cidr, 4, z)]
  # Server i lives in zone i mod |zones|, at host 10, 11, ... of that subnet.
  server_az_index = [for i in range(var.server_count) : i % length(local.azs)]
  private_ips     = [for i in range(var.server_count) : cidrhost(local.subnet_cidrs[local.server_az_index[i]], 10 + floor(i / length(local.azs)))]
  voters          = [for i in range(var.server_count) : i < var.server_count - var.nonvoter_count]

  # cloud-init: find the data disk (Nitro exposes EBS volumes as NVMe
  # devices whose serial is the volume id), make an ext4 file system on it
  # only if it has none (a re-created instance keeps its Raft data), mount
  # it at /var/lib/rctl through /etc/fstab. The volume is attached after the
  # instance starts, so the script waits for it (up to 10 minutes).
  user_data = [for i in range(var.server_count) : <<-EOT
    #cloud-config
    hostname: ${local.ids[i]}
    write_files:
      - path: /usr/local/sbin/rctl-data-disk
        permissions: "0755"
        content: |
          #!/bin/sh
          # Managed by Terraform (terraform/modules/aws-servers): mount rctl's data disk.
          set -eu
          dev=""
          for _ in $(seq 1 300); do
            for d in /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${replace(aws_ebs_volume.data[i].id, "-", "")} /dev/xvdf; do
              if [ -b "$d" ]; then dev=$(readlink -f "$d"); break 2; fi
            done
            sleep 2
          done
          [ -n "$dev" ] || { echo "rctl-data-disk: the data disk ${aws_ebs_volume.data[i].id} never appeared" >&2; exit 1; }
          blkid "$dev" >/dev/null 2>&1 || mkfs.ext4 -q -L rctl-data "$dev"
          uuid=$(blkid -s UUID -o value "$dev")
          mkdir -p /var/lib/rctl
          grep -q "^UUID=$uuid " /etc/fstab || echo "UUID=$uuid /var/lib/rctl ext4 defaults,noatime,nofail 0 2" >>/etc/fstab
          mountpoint -q /var/lib/rctl || mount /var/lib/rctl
    runcmd:
      - [/usr/local/sbin/rctl-data-disk]
  EOT
  ]
}

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = merge(local.tags, { Name = var.name })
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(local.tags, { Name = var.name })
}

resource "aws_subnet" "this" {
  count             = length(local.azs)
  vpc_id            = aws_vpc.this.id
  availability_zone = local.azs[count.index]
  cidr_block        = local.subnet_cidrs[count.index]
  tags              = merge(local.tags, { Name = "${var.name}-${local.azs[count.index]}" })
}

resource "aws_route_table" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(local.tags, { Name = var.name })
}

resource "aws_route" "internet" {
  route_table_id         = aws_route_table.this.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "this" {
  count          = length(local.azs)
  subnet_id      = aws_subnet.this[count.index].id
  route_table_id = aws_route_table.this.id
}

# Ingress rules: terraform/modules/cross-cloud. Egress: anywhere (package
# mirrors, the other cloud, the VPN).
resource "aws_security_group" "servers" {
  name        = "${var.name}-servers"
  description = "rctl servers; ingress rules are added by terraform/modules/cross-cloud"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${var.name}-servers" })
}

resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.servers.id
  description       = "All outbound traffic"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
  tags              = local.tags
}

resource "aws_key_pair" "admin" {
  key_name   = "${var.name}-admin"
  public_key = var.ssh_public_key
  tags       = local.tags
}

# Allocated on their own, before any instance: the cross-cloud firewall
# rules refer to these addresses, never to the instances.
resource "aws_eip" "server" {
  count  = var.server_count
  domain = "vpc"
  tags   = merge(local.tags, { Name = "${var.name}-${local.ids[count.index]}", rctl_id = local.ids[count.index] })
}

resource "aws_ebs_volume" "data" {
  count             = var.server_count
  availability_zone = local.azs[local.server_az_index[count.index]]
  type              = "gp3"
  size              = var.data_disk_size_gb
  iops              = var.data_disk_iops
  throughput        = var.data_disk_throughput_mibps
  encrypted         = true
  tags              = merge(local.tags, { Name = "${var.name}-${local.ids[count.index]}-data", rctl_id = local.ids[count.index] })
}

resource "aws_instance" "server" {
  count                  = var.server_count
  ami                    = local.ami_id
  instance_type          = var.instance_type
  subnet_id              = aws_subnet.this[local.server_az_index[count.index]].id
  private_ip             = local.private_ips[count.index]
  vpc_security_group_ids = [aws_security_group.servers.id]
  key_name               = aws_key_pair.admin.key_name
  user_data              = local.user_data[count.index]

  root_block_device {
    volume_type = "gp3"
    volume_size = var.root_disk_size_gb
    encrypted   = true
    tags        = merge(local.tags, { Name = "${var.name}-${local.ids[count.index]}-root" })
  }

  metadata_options {
    http_tokens = "required" # IMDSv2 only
  }

  tags = merge(local.tags, {
    Name          = "${var.name}-${local.ids[count.index]}"
    rctl_id       = local.ids[count.index]
    rctl_suffrage = local.voters[count.index] ? "voter" : "nonvoter"
  })

  lifecycle {
    # A newer Ubuntu AMI must not replace a running Raft server.
    ignore_changes = [ami]

    precondition {
      condition     = var.nonvoter_count < var.server_count
      error_message = "nonvoter_count must be less than server_count: at least one server votes."
    }
  }
}

resource "aws_volume_attachment" "data" {
  count       = var.server_count
  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.data[count.index].id
  instance_id = aws_instance.server[count.index].id
}

resource "aws_eip_association" "server" {
  count         = var.server_count
  allocation_id = aws_eip.server[count.index].id
  instance_id   = aws_instance.server[count.index].id

  # An Elastic IP is only reachable once the VPC has its internet gateway.
  depends_on = [aws_internet_gateway.this]
}
