# Construct: an attribute set to null means unset (the builder default applies).
# Verdict: accepted; decided by https://developer.hashicorp.com/packer/docs/templates/hcl_templates/expressions (Types and Values: null)
variable "memory" {
  type    = number
  default = null
}
source "qemu" "deb" {
  iso_url          = "http://example.invalid/debian.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"
  memory  = var.memory
  headless = null
  vm_name = var.memory == null ? "deb-default-memory" : "deb-custom"
}
build {
  sources = ["source.qemu.deb"]

}
