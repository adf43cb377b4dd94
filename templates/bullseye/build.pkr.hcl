# Debian 11 (bullseye): a minimal qcow2 VM image, baked two ways.
#   vmbake build -only=installer bullseye   the Debian installer from the netinst ISO, driven by a preseed
#   vmbake build -only=bootstrap bullseye   mmdebstrap onto a partitioned disk, no installer
# Both builds end with the same provisioning (provision.sh). See README.md.

variable "iso_directory" {
  type        = string
  description = "Where Debian's CD server keeps the netinst ISO of iso_version, with its SHA256SUMS"
  default     = "https://cdimage.debian.org/cdimage/archive/11.11.0/amd64/iso-cd"
}

variable "iso_version" {
  type        = string
  description = "The point release of the netinst ISO (11.N.0)"
  default     = "11.11.0"
}

# The way in to the finished image (both builds). With none of them set, the image has none: the build says so.
variable "ssh_authorized_keys" {
  type        = list(string)
  description = "Public keys (OpenSSH lines) or paths of authorized_keys/.pub files for root and for user"
  default     = []
}

variable "root_password" {
  type        = string
  description = "Root's password: clear text (vmbake hashes it with yescrypt) or a crypt hash; empty locks it"
  default     = ""
  sensitive   = true
}

variable "user" {
  type        = string
  description = "An unprivileged user with password-less sudo who gets ssh_authorized_keys; empty: none"
  default     = ""
}

variable "cloud_init" {
  type        = bool
  description = "Install cloud-init (NoCloud and ConfigDrive data sources), clean so that it runs on the first boot"
  default     = false
}

# The bootstrap build's kernel (local.kernel). Empty: the cloud flavour, Debian's kernel for virtual machines
# (virtio, Xen, Hyper-V, VMware's paravirtual devices, NVMe; as Debian's cloud images and debvm): a smaller
# image that boots sooner. linux-image-amd64 is the generic kernel, for any hardware (and VMware's default
# LSI Logic disk controller and E1000 card). The installer build installs d-i's choice, linux-image-amd64
# (htdocs/baseline.cfg).
variable "kernel" {
  type        = string
  description = "The bootstrap build's kernel package; empty: linux-image-cloud-amd64"
  default     = ""
}

variable "apt_proxy" {
  type        = string
  description = "An apt caching proxy (apt-cacher-ng: http://HOST:3142) for both builds; empty: APT_PROXY or http_proxy from the environment, else none"
  default     = ""
}

locals {
  kernel = var.kernel != "" ? var.kernel : "linux-image-cloud-amd64"
  # An empty name makes no user.
  users   = [{ name = var.user, sudo = true, ssh_authorized_keys = var.ssh_authorized_keys }]
  vm_name = "bullseye.qcow2"
  # Sections run while provisioning: the default ones, then the free space is wiped so the image compacts.
  provision = "/tmp/provision.sh --batch --section default --section zero_freespace"
  # Run at the end of the build, instead of a plain poweroff: clean up (keys, logs, identity) then power off.
  shutdown = "/tmp/provision.sh --batch --section clean_shutdown"
}

source "qemu" "installer" {
  iso_url      = "${var.iso_directory}/debian-${var.iso_version}-amd64-netinst.iso"
  iso_checksum = "file:${var.iso_directory}/SHA256SUMS"

  # The preseed files, plus login.cfg, which vmbake writes from the login keys below and the build's
  # temporary key: passwd/ answers, and the late_command that installs the keys.
  http_directory = "${path.root}/htdocs"
  http_content = {
    "/login.cfg" = "{{ .LoginPreseed }}"
    # The package proxy for the installer (apt_proxy below, or the environment's); provision.sh's
    # clean_apt takes it out of the image again.
    "/proxy.cfg" = "d-i mirror/http/proxy string {{ .AptProxy }}\n"
  }

  boot_wait = "5s"
  boot_command = [
    "<esc><wait5>expert<spacebar>ipv6.disable=1<spacebar>net.ifnames=0<spacebar>auto=true<spacebar>priority=critical<spacebar>url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/virtual-host.cfg<wait5><enter>"
  ]

  memory             = 1024
  disk_size          = "5120M"
  format             = "qcow2"
  disk_compression   = true
  disk_interface     = "virtio"
  disk_discard       = "unmap"
  disk_detect_zeroes = "unmap"
  accelerator        = ""
  headless           = true
  output_directory   = "output-installer"
  vm_name            = local.vm_name

  root_ssh_keys = var.ssh_authorized_keys
  root_password = var.root_password
  users         = local.users
  cloud_init    = var.cloud_init
  apt_proxy     = var.apt_proxy

  communicator     = "ssh"
  ssh_username     = "root"
  ssh_timeout      = "60m"
  shutdown_command = local.shutdown
  shutdown_timeout = "15m"
}

source "debian-bootstrap" "bootstrap" {
  suite    = "bullseye"
  kernel   = local.kernel
  firmware = "bios"
  hostname = "debian"
  domain   = "localdomain"
  # Provisioning runs in a chroot of the image before its first boot (at the host's speed); the VM then
  # boots once, on a snapshot, for the report. "vm" provisions in the booted guest instead.
  provision_stage = "tree"
  # The closest to the installer's layout that plain partitions allow (no LVM).
  partitions = [
    { mountpoint = "/boot", size = "512M", fs = "ext4" },
    { mountpoint = "/", size = "2G", fs = "ext4" },
    { mountpoint = "/var", size = "1G", fs = "ext4" },
    { mountpoint = "/tmp", size = "512M", fs = "ext4" },
    { mountpoint = "swap", fs = "swap" },
  ]

  memory             = 1024
  disk_size          = "5120M"
  format             = "qcow2"
  disk_compression   = true
  disk_discard       = "unmap"
  disk_detect_zeroes = "unmap"
  accelerator        = ""
  headless           = true
  output_directory   = "output-bootstrap"
  vm_name            = local.vm_name

  root_ssh_keys = var.ssh_authorized_keys
  root_password = var.root_password
  users         = local.users
  cloud_init    = var.cloud_init
  apt_proxy     = var.apt_proxy

  ssh_username = "root"
  # The first boot makes the SSH host keys; under TCG on a busy host that alone can take minutes.
  ssh_timeout      = "30m"
  shutdown_command = local.shutdown
  shutdown_timeout = "15m"
}

build {
  sources = ["source.qemu.installer", "source.debian-bootstrap.bootstrap"]

  provisioner "file" {
    source      = "${path.root}/provision.sh"
    destination = "/tmp/"
  }

  provisioner "shell" {
    inline = [
      "chmod 0755 /tmp/provision.sh",
      local.provision,
    ]
  }
}
