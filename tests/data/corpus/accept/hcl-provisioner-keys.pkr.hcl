# HCL2: provisioner blocks with the keys Vagrant box builders use: environment_vars, execute_command with
# {{ .Vars }} and {{ .Path }}, expect_disconnect, pause_before/pause_after, max_retries, and a file upload
# (docs: provisioners/shell, provisioners/file, templates/hcl_templates/blocks/build/provisioner).
# packer-1.6.6: judge
source "qemu" "corpus" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "corpus"
  ssh_password     = "corpus"
  shutdown_command = "echo corpus | sudo -S poweroff"
}

build {
  sources = ["source.qemu.corpus"]

  provisioner "file" {
    source      = "files/setup.sh"
    destination = "/tmp/setup.sh"
  }

  provisioner "shell" {
    environment_vars  = ["HOME_DIR=/home/corpus"]
    execute_command   = "echo corpus | {{ .Vars }} sudo -S -E sh -eux '{{ .Path }}'"
    expect_disconnect = true
    pause_before      = "5s"
    max_retries       = 2
    scripts           = ["files/setup.sh"]
  }

  provisioner "shell" {
    inline      = ["echo after the reboot"]
    pause_after = "5s"
  }
}
