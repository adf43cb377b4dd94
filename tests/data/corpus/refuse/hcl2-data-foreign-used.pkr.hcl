# Construct: a source using the value of a data source of a plugin that is not installed (vmbake runs only null and http).
# Verdict: refused; decided by https://developer.hashicorp.com/packer/docs/templates/hcl_templates/blocks/data (Packer without the amazon plugin refuses the unknown data source type)
data "amazon-ami" "base" {
  owners = ["136693071363"]
}
source "qemu" "deb" {
  iso_url          = "http://example.invalid/debian.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"
  vm_name = data.amazon-ami.base.id
}
build {
  sources = ["source.qemu.deb"]

}
