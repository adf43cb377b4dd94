# HCL2: cd_content writes files from the template onto a CD labelled cidata, a cloud-init NoCloud seed
# (packer-plugin-sdk multistep/commonsteps/extra_iso_config.go, cd_content and cd_label; docs: builders/qemu).
source "qemu" "corpus" {
  iso_url      = "http://cloud.example.invalid/generic-amd64.qcow2"
  iso_checksum = "none"
  disk_image   = true
  cd_label     = "cidata"
  cd_content = {
    "meta-data" = "instance-id: corpus\n"
    "user-data" = "#cloud-config\npassword: corpus\n"
  }
  ssh_username     = "debian"
  ssh_password     = "corpus"
  shutdown_command = "sudo poweroff"
}

build {
  sources = ["source.qemu.corpus"]
}
