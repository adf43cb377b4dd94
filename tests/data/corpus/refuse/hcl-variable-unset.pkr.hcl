# HCL2: a variable with no default that nothing sets (Packer hcl2template/types.variables.go: "Unset variable";
# docs: templates/hcl_templates/variables).
# packer-1.6.6: judge
variable "iso_url" {
  type = string
}

source "qemu" "corpus" {
  iso_url          = var.iso_url
  iso_checksum     = "none"
  ssh_username     = "root"
  shutdown_command = "poweroff"
}

build {
  sources = ["source.qemu.corpus"]
}
