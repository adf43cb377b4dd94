# HCL2: a value that cannot be converted to the variable's type, a word for a number
# (Packer hcl2template/types.variables.go: "Invalid value for variable"; docs: templates/hcl_templates/variables).
# vmbake-args: -var memory=lots
# packer-1.6.6: judge
variable "memory" {
  type    = number
  default = 1024
}

source "qemu" "corpus" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  memory           = var.memory
  ssh_username     = "root"
  shutdown_command = "poweroff"
}

build {
  sources = ["source.qemu.corpus"]
}
