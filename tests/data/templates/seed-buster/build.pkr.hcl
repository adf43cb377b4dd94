# The HCL2 twin of packer.json: it must load to the same typed model.

variable "vm_name" {
  type    = string
  default = "buster"
}

variable "iso_url" {
  type    = string
  default = "https://cdimage.debian.org/cdimage/archive/10.5.0/amd64/iso-cd/debian-10.5.0-amd64-netinst.iso"
}

variable "iso_checksum" {
  type    = string
  default = "sha256:93863e17ac24eeaa347dfb91dddac654f214c189e0379d7c28664a306e0301e7"
}

variable "memory" {
  type    = string
  default = "1024"
}

variable "root_password" {
  type      = string
  default   = "r00tme"
  sensitive = true
}

source "qemu" "buster" {
  vm_name            = "${var.vm_name}.qcow2"
  iso_url            = var.iso_url
  iso_checksum       = var.iso_checksum
  output_directory   = "output"
  disk_size          = "5120M"
  format             = "qcow2"
  disk_compression   = true
  headless           = true
  qemuargs           = [["-m", "${var.memory}M"], ["-smp", "2"]]
  http_directory     = "${path.root}/htdocs"
  boot_wait          = "5s"
  boot_command = [
    "<esc><wait5>",
    "expert<spacebar>ipv6.disable=1<spacebar>net.ifnames=0<spacebar>auto=true<spacebar>priority=critical<spacebar>",
    "url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/virtual-host.cfg<wait5><enter>"
  ]
  ssh_username         = "root"
  ssh_password         = var.root_password
  ssh_private_key_file = "${path.root}/ssh_key.placeholder"
  ssh_timeout          = "30m"
  shutdown_command     = "/tmp/provision.sh --batch --section clean_shutdown"
}

build {
  description = "Minimal Debian buster image"
  sources     = ["source.qemu.buster"]

  provisioner "file" {
    source      = "${path.root}/provision.sh"
    destination = "/tmp/"
  }

  provisioner "shell" {
    pause_before = "5s"
    inline       = ["chmod +x /tmp/provision.sh", "/tmp/provision.sh --batch"]
  }
}
