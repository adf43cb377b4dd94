# Construct: a dynamic block (for_each, iterator, content) making a nested block of the source.
# Verdict: accepted; decided by https://developer.hashicorp.com/packer/docs/templates/hcl_templates/expressions (dynamic blocks) and the QEMU plugin's qemu_img_args block
variable "convert_args" {
  default = [["-c"]]
}
source "qemu" "deb" {
  iso_url          = "http://example.invalid/debian.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"
  dynamic "qemu_img_args" {
    for_each = var.convert_args
    iterator = args
    content {
      convert = args.value
    }
  }
}
build {
  sources = ["source.qemu.deb"]

}
