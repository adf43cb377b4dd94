# Construct: two named build blocks, one of a qemu source and one of a null source (host-side steps), one
# chosen with -only on a glob of the build name, as canonical/packer-maas's Makefile does (-only='cloudimg.*'),
# and a provisioner whose except is a conditional that gives a list or null, as chef/bento writes it.
# The dropped build's script and the excepted provisioner's script do not exist: neither is checked.
# Verdict: accepted; decided by hcl2template/types.packer_config.go (GetBuilds matches -only against
# BUILD.TYPE.NAME with globs before the builds are started) and types.build.provisioners.go (OnlyExcept:
# a null except is no except; an excepted provisioner is not prepared).
# vmbake-args: -only=cloudimg.*
variable "skip_cleanup" {
  type    = bool
  default = true
}

source "qemu" "img" {
  iso_url          = "http://deb.example.invalid/corpus.iso"
  iso_checksum     = "none"
  ssh_username     = "root"
  ssh_password     = "corpus"
  shutdown_command = "poweroff"
}

source "null" "deps" {
  communicator = "none"
}

build {
  name    = "cloudimg"
  sources = ["source.qemu.img"]

  provisioner "shell" {
    inline = ["apt-get update"]
    except = var.skip_cleanup ? null : ["qemu.img"]
  }

  provisioner "shell" {
    script = "scripts/cleanup.sh"
    except = var.skip_cleanup ? ["qemu.img"] : null
  }
}

build {
  name    = "deps"
  sources = ["source.null.deps"]

  provisioner "shell-local" {
    script = "scripts/fetch-deps.sh"
  }
}
