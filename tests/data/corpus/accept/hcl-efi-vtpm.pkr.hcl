# HCL2: UEFI with efi_boot, efi_firmware_code, efi_firmware_vars, machine_type q35 and a vTPM, the plugin's
# own example/efi_build does this (packer-plugin-qemu builder/qemu/config.go, efi_boot, vtpm; docs: builders/qemu).
source "qemu" "corpus" {
  iso_url           = "http://deb.example.invalid/corpus.iso"
  iso_checksum      = "none"
  machine_type      = "q35"
  efi_boot          = true
  efi_firmware_code = "/usr/share/OVMF/OVMF_CODE_4M.fd"
  efi_firmware_vars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
  vtpm              = true
  cpu_model         = "host"
  ssh_username      = "root"
  ssh_password      = "corpus"
  shutdown_command  = "poweroff"
}

build {
  sources = ["source.qemu.corpus"]
}
