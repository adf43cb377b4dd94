# Construct: a quoted string cut by a newline (vmbake names the line and column where it starts).
# Verdict: refused; decided by the HCL native syntax spec (a quoted template may not contain a newline)

source "qemu" "deb" {
  iso_url          = "http://example.invalid/debian.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"
  vm_name = "debian
  format  = "qcow2"
}
build {
  sources = ["source.qemu.deb"]

}
