# Construct: a vagrant-cloud post-processor after vagrant (uploads the box to HCP Vagrant).
# Verdict: accepted with -except=vagrant-cloud, which drops it (and the rest of its chain), as in Packer
# (docs: commands/build, -except also names post-processors).
# vmbake-args: -except=vagrant-cloud
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
