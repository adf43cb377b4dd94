# HCL2: http_content serves a map of path to content from the builder's HTTP server instead of a directory
# (packer-plugin-sdk multistep/commonsteps/http_config.go, http_content; docs: builders/qemu, HTTP configuration).
source "qemu" "corpus" {
  iso_url      = "http://cloud.example.invalid/generic-amd64.qcow2"
  iso_checksum = "none"
  disk_image   = true
  http_content = {
    "/meta-data" = "instance-id: corpus\n"
    "/user-data" = "#cloud-config\n"
  }
  qemuargs = [
    ["-smbios", "type=1,serial=ds=nocloud-net;s=http://{{ .HTTPIP }}:{{ .HTTPPort }}/"],
  ]
  ssh_username     = "debian"
  ssh_password     = "corpus"
  shutdown_command = "sudo poweroff"
}

build {
  sources = ["source.qemu.corpus"]
}
