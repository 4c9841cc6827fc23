# gcp-servers: rctl servers in one GCP region.
#
# Creates a custom-mode VPC network with one subnet (a custom network
# admits no ingress until a firewall rule does: terraform/modules/cross-cloud
# adds the 50051 and SSH rules for both clouds in one place, aimed at this
# module's network tag), and per server: a static internal and a static
# external address allocated before the instance (so firewall rules
# elsewhere can name them without depending on the instance), a pd-ssd data
# disk that outlives the instance, and the instance itself, whose cloud-init
# formats the data disk once and mounts it at /var/lib/rctl.

data "google_compute_zones" "available" {
  project = var.project
  region  = var.region
  status  = "UP"
}

locals {
  zones      = length(var.zones) > 0 ? var.zones : slice(sort(data.google_compute_zones.available.names), 0, min(3, length(data.google_compute_zones.available.names)))
  target_tag = "${var.name}-server"

  labels = merge(var.labels, {
    role   = "rctl-server"
    cloud  = "gcp"
    region = var.region
  })

  ids = [for i in range(var.server_count) : "${var.id_prefix}-${i + 1}"]
  # Server i lives in zone i mod |zones|, at host 10, 11, ... of the subnet.
  server_zone = [for i in range(var.server_count) : local.zones[i % length(local.zones)]]
  private_ips = [for i in range(var.server_count) : cidrhost(var.subnet_cidr, 10 + i)]
  voters      = [for i in range(var.server_count) : i < var.server_count - var.nonvoter_count]

  # cloud-init: the data disk is attached at boot as
  # /dev/disk/by-id/google-rctl-data; make an ext4 file system on it only if
  # it has none (a re-created instance keeps its Raft data) and mount it at
  # /var/lib/rctl through /etc/fstab.
  user_data = [for i in range(var.server_count) : <<-EOT
    #cloud-config
    hostname: ${local.ids[i]}
    write_files:
      - path: /usr/local/sbin/rctl-data-disk
        permissions: "0755"
        content: |
          #!/bin/sh
          # Managed by Terraform (terraform/modules/gcp-servers): mount rctl's data disk.
          set -eu
          dev=""
          for _ in $(seq 1 300); do
            for d in /dev/disk/by-id/google-rctl-data; do
              if [ -b "$d" ]; then dev=$(readlink -f "$d"); break 2; fi
            done
            sleep 2
          done
          [ -n "$dev" ] || { echo "rctl-data-disk: the data disk ${var.name}-${local.ids[i]}-data never appeared" >&2; exit 1; }
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

resource "google_compute_network" "this" {
  project                 = var.project
  name                    = var.name
  auto_create_subnetworks = false
}

resource "google_compute_subnetwork" "this" {
  project       = var.project
  name          = "${var.name}-${var.region}"
  region        = var.region
  network       = google_compute_network.this.id
  ip_cidr_range = var.subnet_cidr
}

# Allocated on their own, before any instance: the cross-cloud firewall
# rules refer to these addresses, never to the instances.
resource "google_compute_address" "internal" {
  count        = var.server_count
  project      = var.project
  name         = "${var.name}-${local.ids[count.index]}-internal"
  region       = var.region
  address_type = "INTERNAL"
  subnetwork   = google_compute_subnetwork.this.id
  address      = local.private_ips[count.index]
  labels       = local.labels
}

resource "google_compute_address" "external" {
  count        = var.server_count
  project      = var.project
  name         = "${var.name}-${local.ids[count.index]}"
  region       = var.region
  address_type = "EXTERNAL"
  network_tier = "PREMIUM"
  labels       = local.labels
}

resource "google_compute_disk" "data" {
  count   = var.server_count
  project = var.project
  name    = "${var.name}-${local.ids[count.index]}-data"
  zone    = local.server_zone[count.index]
  type    = "pd-ssd"
  size    = var.data_disk_size_gb
  labels  = merge(local.labels, { rctl_id = local.ids[count.index] })
}

resource "google_compute_instance" "server" {
  count                     = var.server_count
  project                   = var.project
  name                      = "${var.name}-${local.ids[count.index]}"
  zone                      = local.server_zone[count.index]
  machine_type              = var.machine_type
  tags                      = [local.target_tag]
  allow_stopping_for_update = true

  labels = merge(local.labels, {
    rctl_id       = local.ids[count.index]
    rctl_suffrage = local.voters[count.index] ? "voter" : "nonvoter"
  })

  boot_disk {
    initialize_params {
      image = var.image
      size  = var.root_disk_size_gb
      type  = "pd-balanced"
    }
  }

  attached_disk {
    source      = google_compute_disk.data[count.index].id
    device_name = "rctl-data"
  }

  network_interface {
    subnetwork = google_compute_subnetwork.this.id
    network_ip = google_compute_address.internal[count.index].address

    access_config {
      nat_ip       = google_compute_address.external[count.index].address
      network_tier = "PREMIUM"
    }
  }

  metadata = {
    user-data = local.user_data[count.index]
    ssh-keys  = "${var.ssh_user}:${var.ssh_public_key}"
    # Only this key: no project-wide keys, no OS Login (which would ignore it).
    block-project-ssh-keys = "true"
    enable-oslogin         = "false"
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  lifecycle {
    # A newer Ubuntu image must not replace a running Raft server.
    ignore_changes = [boot_disk[0].initialize_params[0].image]

    precondition {
      condition     = var.nonvoter_count < var.server_count
      error_message = "nonvoter_count must be less than server_count: at least one server votes."
    }
  }
}
