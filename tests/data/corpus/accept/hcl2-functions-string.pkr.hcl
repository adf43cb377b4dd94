# Construct: string functions (format, formatlist, regex, regexall, regex_replace, replace, substr, trim*, title, indent, chomp, strrev, split, join).
# Verdict: accepted; decided by https://developer.hashicorp.com/packer/docs/templates/hcl_templates/functions (String Functions)
locals {
  version = regex("(\\d+)\\.(\\d+)", "debian-13.2-amd64")
  parts   = split("-", "debian-13.2-amd64")
  cleaned = trimsuffix(trimprefix(trimspace("  deb-x.iso "), "deb-"), ".iso")
  checks = [
    format("%s-%03d", title("debian"), 7),
    join(",", formatlist("%s=%s", ["a", "b"], ["1", "2"])),
    regex_replace("deb_13", "_(\\d+)", "-$1"),
    replace("a.b.c", ".", "-"),
    substr("debian", 0, 3),
    trim("--x--", "-"),
    indent(2, "a\nb"),
    chomp("line\n"),
    strrev("abc"),
    lower(upper("x")),
    tostring(length(regexall("[a-z]", "a1b2"))),
  ]
}
source "qemu" "deb" {
  iso_url          = "http://example.invalid/debian.iso"
  iso_checksum     = "sha256:2f2d2c9bc4ab6ac21e3b8d3ba0d2f1b3b0a3cdfa5a83d77e2c2cf1c1f06e1a4b"
  ssh_username     = "root"
  shutdown_command = "poweroff"
  vm_name = "${local.parts[0]}-${local.version[0]}-${local.cleaned}"
}
build {
  sources = ["source.qemu.deb"]
  provisioner "shell" {
    inline = local.checks
  }
}
