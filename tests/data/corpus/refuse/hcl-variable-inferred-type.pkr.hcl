# Construct: a variable without a type takes its default's type: -var cpus=two is not a number.
# Verdict: refused ("Invalid argument value for -var variable"); decided by hashicorp/packer
# hcl2template/types.variables.go (decodeVariableBlock: the type of the default when none is given)
# vmbake-args: -var cpus=two
# packer-1.6.6: judge
variable "mem" {
  type    = number
  default = 1024
}
variable "flag" {
  type    = bool
  default = true
}
variable "disks" {
  type    = list(string)
  default = []
}
variable "cfg" {
  type    = object({ name = string, size = number })
  default = { name = "deb", size = 1 }
}
variable "cpus" {
  default = 1
}

source "qemu" "deb" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  ssh_password     = "corpus"
  shutdown_command = "poweroff"
  memory           = var.mem
  cpus             = var.cpus
  headless         = var.flag
  disk_additional_size = var.disks
  vm_name          = "${var.cfg.name}-${var.cfg.size}"
}

build {
  sources = ["source.qemu.deb"]
}
