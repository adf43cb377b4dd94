# Construct: variable type constraints (number, bool, list, map, object, tuple, set) and the conversions
# Packer applies to every value: "2048" to a number, "true" to a bool, numbers to strings, an object's
# extra attributes dropped; a variable without a type takes its default's type, so -var cpus=2 is a number.
# Verdict: accepted; decided by hashicorp/packer hcl2template/types.variables.go (convert.Convert to the
# type; the default's type when none is given) and docs templates/hcl_templates/variables (Type Constraints)
# vmbake-args: -var cpus=2 -var-file=files/types.pkrvars.hcl
# packer-1.6.6: judge
variable "mem" {
  type    = number
  default = "2048"
}
variable "flag" {
  type    = bool
  default = "true"
}
variable "disks" {
  type    = list(string)
  default = [1024, 2048]
}
variable "cfg" {
  type    = object({ name = string, size = number })
  default = { name = "deb", size = "3", extra = true }
}
variable "labels" {
  type    = map(string)
  default = { a = 1 }
}
variable "pair" {
  type    = tuple([string, number])
  default = ["a", "1"]
}
variable "uniq" {
  type    = set(string)
  default = ["a", "a"]
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
