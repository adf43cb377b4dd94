# HCL2: typed variables with defaults, set from a .pkrvars.hcl file and -var, used as var.NAME
# (docs: templates/hcl_templates/variables, assigning values to build variables).
# vmbake-args: -var-file=files/vars.pkrvars.hcl -var disk=6G
# packer-1.6.6: judge
variable "memory" {
  type    = number
  default = 512
}

variable "user" {
  type = string
}

variable "disk" {
  type    = string
  default = "4G"
}

source "qemu" "corpus" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  memory           = var.memory
  disk_size        = var.disk
  ssh_username     = var.user
  ssh_password     = "corpus"
  shutdown_command = "poweroff"
}

build {
  sources = ["source.qemu.corpus"]
}
