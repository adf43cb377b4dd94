# One machine for three hypervisors: vmware-iso and hyperv-iso sources beside a qemu one. vmbake lists all
# three (inspect), checks and builds the qemu one, and names the other two as skipped; their keys are not
# checked. Packer's verdict: hcl2template/types.packer_config.go (GetBuilds starts only the builders of
# the selected sources; with their plugins installed Packer accepts this template).
source "vmware-iso" "debian" {
  guest_os_type    = "debian10-64"
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  ssh_password     = "corpus"
  shutdown_command = "poweroff"
}

source "hyperv-iso" "debian" {
  generation   = 2
  iso_url      = "http://deb.example.invalid/corpus.iso"
  iso_checksum = "none"
  ssh_username = "root"
}

source "qemu" "debian" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  ssh_password     = "corpus"
  shutdown_command = "poweroff"
}

build {
  sources = ["source.vmware-iso.debian", "source.hyperv-iso.debian", "source.qemu.debian"]

  provisioner "shell" {
    only   = ["vmware-iso.debian"]
    inline = ["vmware-toolbox-cmd -v"]
  }

  provisioner "shell" {
    inline = ["echo ${source.type}"]
  }
}
