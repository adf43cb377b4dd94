# Construct: a vagrant-cloud post-processor after vagrant (uploads the box to HCP Vagrant).
# Verdict: refused by vmbake, which does not upload; Packer accepts it given an access token
# (packer-plugin-vagrant post-processor/vagrant-cloud). accept/hcl-vagrant-cloud-except.pkr.hcl skips it.
source "qemu" "corpus" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  ssh_password     = "corpus"
  shutdown_command = "poweroff"
}

build {
  sources = ["source.qemu.corpus"]
  post-processors {
    post-processor "vagrant" {}
    post-processor "vagrant-cloud" {
      box_tag = "corpus/debian"
      version = "1.0.0"
    }
  }
}
