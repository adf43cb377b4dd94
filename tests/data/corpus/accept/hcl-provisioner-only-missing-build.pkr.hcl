# A provisioner whose only/except name builds that do not exist, or a source by its bare name: HCL2 Packer
# matches them exactly against TYPE.NAME and checks nothing else, so these provisioners simply never run
# (hcl2template/types.build.provisioners.go, OnlyExcept.Skip; types.packer_config.go calls it with
# source.String()). Their scripts are therefore never looked at.
source "qemu" "debian" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  ssh_password     = "corpus"
  shutdown_command = "poweroff"
}

build {
  sources = ["source.qemu.debian"]

  provisioner "shell" {
    only   = ["virtualbox-iso.debian"]
    script = "scripts/guest-additions.sh"
  }

  provisioner "shell" {
    only   = ["debian"]
    script = "scripts/also-never-run.sh"
  }

  provisioner "shell" {
    only   = ["qemu.debian"]
    inline = ["echo runs"]
  }
}
