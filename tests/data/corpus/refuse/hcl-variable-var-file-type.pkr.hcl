# Construct: a var file value that does not fit the variable's type (a string for list(string)).
# Verdict: refused ("Invalid value for variable"); decided by hashicorp/packer hcl2template/types.variables.go
# (collectVariableValues converts each var file value to the type)
# vmbake-args: -var-file=files/types-bad.pkrvars.hcl
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
