# -only drops a source, and the provisioners bound to it, before anything is checked: the floppy file and
# the script that only the dropped build uses need not exist (hcl2template/types.packer_config.go,
# GetBuilds: -only/-except are applied before startBuilder and getCoreBuildProvisioners).
# vmbake-args: -only=qemu.small
source "qemu" "small" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  ssh_password     = "corpus"
  shutdown_command = "poweroff"
}

source "qemu" "windows" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  floppy_files     = ["answer-files/autounattend.xml"]
  communicator     = "none"
}

build {
  sources = ["source.qemu.small", "source.qemu.windows"]

  provisioner "shell-local" {
    only   = ["qemu.windows"]
    script = "scripts/sysprep.ps1"
  }
}
