# Construct: `type = any` (any value, kept as it is) and object attributes marked optional(T) and
# optional(T, default).
# Verdict: accepted by current Packer, which reads the type with typeexpr.TypeConstraintWithDefaults
# (hashicorp/packer hcl2template/types.variables.go); Packer 1.6.6 required an exact type, so it does not judge.
variable "anything" {
  type    = any
  default = [1, "a"]
}
variable "disk" {
  type    = object({ size = string, label = optional(string), format = optional(string, "qcow2") })
  default = { size = "10G" }
}

source "qemu" "deb" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  ssh_password     = "corpus"
  shutdown_command = "poweroff"
  disk_size        = var.disk.size
  vm_name          = "deb-${length(var.anything)}-${var.disk.label == null ? "nolabel" : var.disk.label}"
  format           = var.disk.format
}

build {
  sources = ["source.qemu.deb"]
}
