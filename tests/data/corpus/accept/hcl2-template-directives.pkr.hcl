# Construct: %{ if } / %{ else } / %{ endif } and %{ for } / %{ endfor } with ~ strip markers.
# Verdict: accepted; decided by https://developer.hashicorp.com/packer/docs/templates/hcl_templates/expressions (String Templates, directives)
variable "users" {
  default = ["alice", "bob"]
}
variable "debug" {
  default = false
}
locals {
  setup = <<-EOT
    %{ for u in var.users ~}
    useradd -m ${u}
    %{ endfor ~}
    %{~ if var.debug }set -x%{ else }true%{ endif }
  EOT
}
source "qemu" "deb" {
  iso_url          = "http://example.invalid/debian.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"
  vm_name = "deb-%{ if var.debug }debug%{ else }release%{ endif }"
}
build {
  sources = ["source.qemu.deb"]
  provisioner "shell" {
    inline = [local.setup]
  }
}
