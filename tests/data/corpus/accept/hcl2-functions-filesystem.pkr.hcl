# Construct: filesystem functions (file, fileexists, fileset, abspath, basename, dirname, pathexpand) on path.root.
# Verdict: accepted; decided by https://developer.hashicorp.com/packer/docs/templates/hcl_templates/functions (Filesystem Functions)
locals {
  self = "${path.root}/hcl2-functions-filesystem.pkr.hcl"
}
source "qemu" "deb" {
  iso_url          = "http://example.invalid/debian.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"
  vm_name = basename(dirname(abspath(local.self)))
  http_content = {
    "/self.txt" = fileexists(local.self) ? substr(file(local.self), 0, 11) : ""
  }
}
build {
  sources = ["source.qemu.deb"]
  provisioner "shell" {
    inline = [length(fileset(path.root, "*.pkr.hcl")) > 0 ? "ok" : "none", pathexpand("~/x")]
  }
}
