# Construct: a variable validation block (condition and error_message), checked once the value is known.
# Verdict: accepted; decided by https://developer.hashicorp.com/packer/docs/templates/hcl_templates/variables (Custom Validation Rules)
variable "release" {
  type    = string
  default = "trixie"
  validation {
    condition     = can(regex("^(bookworm|trixie)$", var.release))
    error_message = "The release must be bookworm or trixie."
  }
}

source "qemu" "deb" {
  iso_url          = "http://example.invalid/debian-${var.release}.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"
}

build {
  sources = ["source.qemu.deb"]
}
