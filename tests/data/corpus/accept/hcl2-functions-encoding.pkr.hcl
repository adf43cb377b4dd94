# Construct: encoding functions (jsonencode/jsondecode, yamlencode/yamldecode, base64, csvdecode, urlencode, textencodebase64).
# Verdict: accepted; decided by https://developer.hashicorp.com/packer/docs/templates/hcl_templates/functions (Encoding Functions)
locals {
  cfg     = yamldecode("release: trixie\nmirror: deb.debian.org\n")
  rows    = csvdecode("name,size\nroot,4G\n")
  encoded = base64encode(jsonencode(local.cfg))
}
source "qemu" "deb" {
  iso_url          = "http://example.invalid/debian.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"
  vm_name   = "deb-${jsondecode(base64decode(local.encoded)).release}-${local.rows[0].size}"
  iso_url   = "http://example.invalid/${urlencode("a b")}.iso"
}
build {
  sources = ["source.qemu.deb"]
  provisioner "shell" {
    inline = [yamlencode(local.cfg), textencodebase64("x", "UTF-16LE")]
  }
}
