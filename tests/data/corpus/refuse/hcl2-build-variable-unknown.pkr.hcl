# Construct: build.X naming a value no builder gives.
# Verdict: refused ("Unsupported attribute"); decided by hashicorp/packer hcl2template/types.packer_config.go
# (unknownBuildValues: build holds build.name and the builder's values only)
# packer-1.6.6: judge
source "qemu" "deb" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  ssh_password     = "corpus"
  shutdown_command = "poweroff"
}

build {
  sources = ["source.qemu.deb"]

  provisioner "shell" {
    inline = ["echo ${build.HTTPIP}"]
  }
}
