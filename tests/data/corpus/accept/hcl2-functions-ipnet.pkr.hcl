# Construct: IP network functions (cidrhost, cidrnetmask, cidrsubnet, cidrsubnets).
# Verdict: accepted; decided by https://developer.hashicorp.com/packer/docs/templates/hcl_templates/functions (IP Network Functions)
locals {
  net = "10.20.0.0/16"
}
source "qemu" "deb" {
  iso_url          = "http://example.invalid/debian.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"
  boot_command = [
    "ip=${cidrhost(cidrsubnet(local.net, 8, 2), 10)}",
    "netmask=${cidrnetmask(local.net)}",
    "subnets=${join(",", cidrsubnets(local.net, 4, 4))}",
  ]
}
build {
  sources = ["source.qemu.deb"]

}
