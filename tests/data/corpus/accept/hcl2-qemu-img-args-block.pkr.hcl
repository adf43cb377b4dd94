# Construct: qemu_img_args written as a nested block (the QEMU plugin's schema makes it a block).
# Verdict: accepted; decided by https://developer.hashicorp.com/packer/integrations/hashicorp/qemu/latest/components/builder/qemu (qemu_img_args)

source "qemu" "deb" {
  iso_url          = "http://example.invalid/debian.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"
  qemu_img_args {
    create  = ["-o", "cluster_size=64k"]
    convert = ["-o", "compression_type=zlib"]
    resize  = ["--shrink"]
  }
}
build {
  sources = ["source.qemu.deb"]

}
