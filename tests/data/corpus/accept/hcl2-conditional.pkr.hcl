# Construct: conditional expressions, nested, with comparisons and logic operators.
# Verdict: accepted; decided by https://developer.hashicorp.com/packer/docs/templates/hcl_templates/expressions (Conditional Expressions)
variable "headless" {
  type    = bool
  default = true
}
variable "arch" {
  default = "amd64"
}
source "qemu" "deb" {
  iso_url          = "http://example.invalid/debian.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"
  headless = var.headless ? true : false
  format   = var.arch == "arm64" ? "raw" : var.arch != "amd64" || !var.headless ? "raw" : "qcow2"
}
build {
  sources = ["source.qemu.deb"]

}
