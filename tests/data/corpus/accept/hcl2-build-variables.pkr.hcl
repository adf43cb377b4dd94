# Construct: build.X in provisioners and post-processors: build.name and each value the builder gives
# (ID, Host, Port, User, Password, ConnType, PackerRunUUID, PackerHTTPAddr/IP/Port, SSHPublicKey,
# SSHPrivateKey, WinRMPassword), unknown while Packer validates and filled in when the block runs.
# Verdict: accepted; decided by https://developer.hashicorp.com/packer/docs/templates/hcl_templates/contextual-variables
# (hashicorp/packer hcl2template/types.packer_config.go, unknownBuildValues)
# packer-1.6.6: judge
source "qemu" "deb" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  ssh_password     = "corpus"
  shutdown_command = "poweroff"
}

build {
  name    = "images"
  sources = ["source.qemu.deb"]

  provisioner "shell-local" {
    environment_vars = ["RUN=${build.PackerRunUUID}", "CONN=${build.ConnType}"]
    inline = [
      "echo ${build.name} ${build.ID} ${build.Host}:${build.Port} ${build.User} ${build.Password}",
      "echo ${build.PackerHTTPAddr} ${build.PackerHTTPIP} ${build.PackerHTTPPort}",
      "echo ${build.SSHPublicKey} ${build.SSHPrivateKey} ${build.WinRMPassword}",
    ]
  }

  post-processor "shell-local" {
    inline = ["echo built ${build.name} on ${build.Host}"]
  }
}
