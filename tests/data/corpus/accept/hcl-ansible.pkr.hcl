# HCL2: an ansible provisioner with use_proxy unset and an ansible-local one with playbook_files and
# galaxy_file (packer-plugin-ansible docs: provisioners/ansible, provisioners/ansible-local).
# packer-1.6.6: judge
source "qemu" "corpus" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "debian"
  shutdown_command = "sudo poweroff"
}

build {
  sources = ["source.qemu.corpus"]

  provisioner "ansible" {
    playbook_file   = "files/ansible/playbook.yml"
    extra_arguments = ["--extra-vars", "ansible_become=true"]
  }

  provisioner "ansible-local" {
    playbook_files = ["files/ansible/playbook.yml"]
    galaxy_file    = "files/ansible/requirements.yml"
  }
}
