# Construct: a variable's default that does not fit its type constraint (a list for a string).
# Verdict: refused ("Invalid default value for variable"); decided by hashicorp/packer
# hcl2template/types.variables.go (decodeVariableBlock converts the default to the type)
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
  default = { name = ["deb"], size = 1 }
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
