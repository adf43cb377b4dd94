# Construct: for expressions: tuple and object forms, two iterators, if filters, ... grouping.
# Verdict: accepted; decided by https://developer.hashicorp.com/packer/docs/templates/hcl_templates/expressions (For Expressions)
variable "packages" {
  type    = list(string)
  default = ["openssh-server", "curl", "", "vim"]
}
variable "sizes" {
  default = { root = "8G", data = "2G", swap = "1G" }
}
locals {
  wanted  = [for p in var.packages : upper(p) if p != ""]
  indexed = { for i, p in var.packages : p => i if p != "" }
  by_size = { for name, size in var.sizes : size => name... }
  flags   = [for name, size in var.sizes : "${name}=${size}"]
}
source "qemu" "deb" {
  iso_url          = "http://example.invalid/debian.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"
  vm_name = "deb-${length(local.wanted)}-${local.indexed["curl"]}-${join(",", local.by_size["2G"])}"
}
build {
  sources = ["source.qemu.deb"]
  provisioner "shell" {
    inline = local.flags
  }
}
