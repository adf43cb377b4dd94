# HCL2: an installer typed in over VNC (boot_wait, boot_command with waits and the HTTP server's address in a
# Go template inside an HCL string), http_directory, and qemuargs as a list of lists built from variables
# (docs: builders/qemu, boot configuration; packer-plugin-qemu builder/qemu/step_run.go).
# packer-1.6.6: judge
variable "memory" {
  type    = string
  default = "1024M"
}

source "qemu" "corpus" {
  iso_url        = "http://deb.example.invalid/corpus.iso"
  iso_checksum   = "sha256:5f1a5e2b3c8f0e4d6a7b9c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f7"
  http_directory = "files"
  boot_wait      = "5s"
  boot_command = [
    "<esc><wait>",
    "auto url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/preseed.cfg<wait3s>",
    "<enter>",
  ]
  qemuargs = [
    ["-m", var.memory],
    ["-serial", "file:serial-corpus.log"],
  ]
  ssh_username     = "root"
  ssh_password     = "corpus"
  ssh_timeout      = "30m"
  shutdown_command = "poweroff"
}

build {
  sources = ["source.qemu.corpus"]
}
