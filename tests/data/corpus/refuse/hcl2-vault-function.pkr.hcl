# Construct: the vault() function; vmbake contacts no Vault server and says so.
# Verdict: refused; decided by https://developer.hashicorp.com/packer/docs/templates/hcl_templates/functions/contextual/vault (Packer fails when no Vault server answers; none is configured here)

source "qemu" "deb" {
  iso_url          = "http://example.invalid/debian.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"
  ssh_password = vault("/secret/data/build", "password")
}
build {
  sources = ["source.qemu.deb"]

}
