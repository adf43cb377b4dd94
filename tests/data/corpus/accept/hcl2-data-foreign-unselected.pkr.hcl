# Construct: a data source of a plugin vmbake does not run, used only by a build that -only leaves out.
# Verdict: accepted; decided by https://developer.hashicorp.com/packer/docs/templates/hcl_templates/blocks/data (with its plugin installed Packer evaluates it; the selected build does not use it)
# vmbake-args: -only=qemu.plain
data "amazon-ami" "base" {
  owners = ["136693071363"]
}

source "qemu" "from-ami" {
  iso_url          = "http://example.invalid/debian.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"
  vm_name          = data.amazon-ami.base.id
}

source "qemu" "plain" {
  iso_url          = "http://example.invalid/debian.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"
}

build {
  sources = ["source.qemu.from-ami", "source.qemu.plain"]
}
