"""The QEMU builder's keys: Packer 1.6.6's `qemu` builder plus the plugin's EFI keys, plus vmbake's own.

Defaults are Packer's, except where a vmbake key says otherwise. Keys are grouped in mixins so the
bootstrap builder can reuse the machine, communicator and shutdown keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmbake.config.fields import opt
from vmbake.config.login import LoginConfig

DISK_INTERFACES = ("virtio", "virtio-scsi", "scsi", "ide", "sata", "floppy", "pflash", "sd", "mtd")
NET_DEVICES = (
    "virtio-net", "virtio-net-pci", "e1000", "e1000e", "rtl8139", "ne2k_pci", "i82551", "i82557b",
    "i82559er", "pcnet", "vmxnet3", "usb-net",
)  # fmt: skip


@dataclass(frozen=True)
class ISOConfig:
    iso_url: str = opt("", "URL or path of the install ISO; tried before iso_urls", runtime=False)
    iso_urls: list[str] = opt(factory=list, doc="URLs or paths tried in turn until one downloads and checks")
    iso_checksum: str = opt(
        "",
        "Checksum of the ISO: 'sha256:HEX' (md5, sha1, sha512 too), a bare hash, 'file:URL' of a SUMS file, or 'none'",
    )
    iso_target_path: str = opt("", "Where the downloaded ISO is stored, instead of the cache")
    iso_target_extension: str = opt("iso", "Extension of the cached ISO file")
    iso_skip_cache: bool = opt(
        False, "Let QEMU read the ISO from its URL (curl block driver)", supported=False
    )


@dataclass(frozen=True)
class HTTPConfig:
    http_directory: str = opt("", "Directory served over HTTP to the guest (preseed files)")
    http_content: dict[str, str] = opt(
        factory=dict,
        doc="Map of URL path to content served over HTTP; may use {{ .SSHPublicKey }}, {{ .LoginPreseed }} and {{ .AptProxy }}",
        runtime=True,
    )
    http_port_min: int = opt(8000, "Lowest port for the HTTP server", minimum=0, maximum=65535)
    http_port_max: int = opt(9000, "Highest port for the HTTP server", minimum=0, maximum=65535)
    http_bind_address: str = opt(
        "127.0.0.1", "Address the HTTP server binds; vmbake keeps it on loopback (Packer: 0.0.0.0)"
    )
    http_interface: str = opt("", "Network interface whose address is advertised as HTTPIP", supported=False)


@dataclass(frozen=True)
class FloppyCDConfig:
    floppy_files: list[str] = opt(factory=list, doc="Files put on a floppy image attached to the VM")
    floppy_dirs: list[str] = opt(factory=list, doc="Directories copied onto the floppy image")
    floppy_label: str = opt("packer", "Label of the floppy filesystem")
    cd_files: list[str] = opt(factory=list, doc="Files put on an extra CD image attached to the VM")
    cd_content: dict[str, str] = opt(factory=dict, doc="Map of path to content put on the extra CD image")
    cd_label: str = opt("", "Volume label of the extra CD image (for example 'cidata')")


@dataclass(frozen=True)
class BootConfig:
    boot_command: list[str] = opt(
        factory=list,
        doc="Keys typed at boot, joined with no separator; see the boot command language",
        runtime=True,
    )
    boot_steps: list[list[str]] = opt(
        factory=list,
        doc="Boot command as [keys, description] pairs; each description is printed",
        runtime=True,
    )
    boot_wait: float = opt("10s", "Time to wait after starting the VM before typing", kind="duration")
    boot_keygroup_interval: float | None = opt("", "Pause between key groups (Packer 1.7+)", kind="duration")
    boot_key_interval: float | None = opt(
        "", "Pause after each key event; else PACKER_KEY_INTERVAL, else 100ms", kind="duration"
    )
    disable_vnc: bool = opt(False, "Do not start a VNC server (no boot command can be typed over VNC)")
    vnc_bind_address: str = opt("127.0.0.1", "Address the VNC server binds")
    vnc_port_min: int = opt(5900, "Lowest VNC port", minimum=5900, maximum=65535)
    vnc_port_max: int = opt(6000, "Highest VNC port", minimum=5900, maximum=65535)
    vnc_use_password: bool = opt(False, "Protect VNC with a random password, set through QMP")
    vnc_password: str = opt("", "The VNC password (random when vnc_use_password and unset)", sensitive=True)
    boot_command_transport: str = opt(
        "vnc",
        "How the boot command is sent: 'vnc' (as Packer) or 'qmp' (input-send-event)",
        choices=("vnc", "qmp"),
        vmbake=True,
    )


@dataclass(frozen=True)
class ShutdownConfig:
    shutdown_command: str = opt("", "Command run over the communicator to halt the guest", runtime=True)
    shutdown_timeout: float = opt(
        "5m",
        "Time to wait for the guest to power off (0: the default)",
        kind="duration",
        zero_is_default=True,
    )


@dataclass(frozen=True)
class CommConfig:
    communicator: str = opt(
        "ssh",
        "How vmbake talks to the guest: 'ssh' or 'none' ('winrm' validates, as in Packer, but a build refuses it)",
        choices=("ssh", "none", "winrm"),
    )
    pause_before_connecting: float = opt("0s", "Wait this long before the first connection", kind="duration")
    host_port_min: int = opt(
        2222, "Lowest host port forwarded to the guest's SSH port", minimum=1, maximum=65535
    )
    host_port_max: int = opt(
        4444, "Highest host port forwarded to the guest's SSH port", minimum=1, maximum=65535
    )
    ssh_host_port_min: int = opt(0, "Deprecated name of host_port_min", minimum=0, maximum=65535)
    ssh_host_port_max: int = opt(0, "Deprecated name of host_port_max", minimum=0, maximum=65535)
    skip_nat_mapping: bool = opt(False, "Connect to the guest's port directly, without a host forward")
    ssh_host: str = opt("", "Address to connect to (default 127.0.0.1 through the forward)")
    ssh_port: int = opt(22, "The guest's SSH port", minimum=1, maximum=65535)
    ssh_username: str = opt("", "User to log in as")
    ssh_password: str = opt("", "Password to log in with", sensitive=True)
    ssh_private_key_file: str = opt("", "Private key to log in with (ed25519, ecdsa or rsa)")
    ssh_key_passphrase: str = opt("", "Passphrase of ssh_private_key_file", sensitive=True, vmbake=True)
    ssh_agent_auth: bool = opt(False, "Authenticate with the keys of the local SSH agent")
    ssh_timeout: float = opt(
        "5m",
        "Give up waiting for SSH after this long (0: the default)",
        kind="duration",
        zero_is_default=True,
    )
    ssh_wait_timeout: float | None = opt("", "Deprecated name of ssh_timeout", kind="duration")
    ssh_handshake_attempts: int = opt(10, "Attempts once the port answers, before giving up", minimum=1)
    ssh_keep_alive_interval: float = opt("5s", "Interval of keep-alive messages; 0 disables", kind="duration")
    ssh_read_write_timeout: float = opt(
        "0s", "Drop the connection after this long without traffic", kind="duration"
    )
    ssh_pty: bool = opt(False, "Ask for a pseudo-terminal for commands")
    ssh_disable_agent_forwarding: bool = opt(False, "Do not forward the local SSH agent")
    ssh_file_transfer_method: str = opt(
        "sftp", "'sftp' (falls back to scp) or 'scp'", choices=("sftp", "scp")
    )
    ssh_clear_authorized_keys: bool = opt(False, "Remove the temporary key from authorized_keys at the end")
    ssh_ciphers: list[str] = opt(factory=list, doc="Allowed ciphers", supported=False)
    ssh_key_exchange_algorithms: list[str] = opt(factory=list, doc="Allowed key exchanges", supported=False)
    ssh_certificate_file: str = opt("", "Certificate for ssh_private_key_file", supported=False)
    ssh_keypair_name: str = opt("", "Name of the key pair (cloud builders)", supported=False)
    ssh_bastion_host: str = opt("", "Bastion host to connect through", supported=False)
    ssh_bastion_port: int = opt(22, "Port of the bastion host", supported=False)
    ssh_bastion_username: str = opt("", "User on the bastion host", supported=False)
    ssh_bastion_password: str = opt("", "Password on the bastion host", supported=False, sensitive=True)
    ssh_bastion_private_key_file: str = opt("", "Key for the bastion host", supported=False)
    ssh_proxy_host: str = opt("", "SOCKS proxy host", supported=False)
    ssh_proxy_port: int = opt(1080, "SOCKS proxy port", supported=False)
    ssh_remote_tunnels: list[str] = opt(factory=list, doc="Remote port forwards", supported=False)
    ssh_local_tunnels: list[str] = opt(factory=list, doc="Local port forwards", supported=False)
    temporary_key_pair_type: str = opt(
        "ed25519", "Type of the build's temporary key pair (Packer: rsa)", choices=("ed25519", "ecdsa", "rsa")
    )
    temporary_key_pair_bits: int = opt(
        0, "Bits of a temporary rsa or ecdsa key (0: the type's default)", minimum=0
    )
    # Packer's WinRM communicator keys (packer-plugin-sdk communicator/config.go, WinRM): a template written
    # for Windows guests loads, but vmbake, a tool for Debian guests, has no WinRM communicator.
    winrm_username: str = opt("", "WinRM user", supported=False)
    winrm_password: str = opt("", "WinRM password", supported=False, sensitive=True)
    winrm_host: str = opt("", "WinRM host", supported=False)
    winrm_no_proxy: bool = opt(False, "Do not use a proxy for WinRM", supported=False)
    winrm_port: int = opt(5985, "WinRM port", supported=False)
    winrm_timeout: float = opt("30m", "WinRM timeout", supported=False, kind="duration")
    winrm_use_ssl: bool = opt(False, "WinRM over HTTPS", supported=False)
    winrm_insecure: bool = opt(False, "Skip the WinRM certificate check", supported=False)
    winrm_use_ntlm: bool = opt(False, "NTLM authentication for WinRM", supported=False)


@dataclass(frozen=True)
class QemuImgArgs:
    convert: list[str] = opt(factory=list, doc="Extra arguments for 'qemu-img convert'")
    create: list[str] = opt(factory=list, doc="Extra arguments for 'qemu-img create'")
    resize: list[str] = opt(factory=list, doc="Extra arguments for 'qemu-img resize'")


@dataclass(frozen=True)
class MachineConfig:
    """The VM and its disk: shared by the qemu and debian-bootstrap builders."""

    accelerator: str = opt(
        "",
        "kvm, tcg, xen or none; empty probes KVM with a tiny guest and falls back to tcg. hax, hvf and whpx "
        "(Windows and macOS accelerators) are accepted, as by Packer, but a build on Linux refuses them",
        choices=("", "kvm", "tcg", "hax", "hvf", "whpx", "xen", "none"),
    )
    cpus: int = opt(
        0,
        "Number of virtual CPUs; 0 (vmbake's default) gives the build VM the host's CPUs, at most 4 "
        "(Packer's default is 1)",
        minimum=0,
        maximum=1024,
    )
    sockets: int = opt(0, "CPU sockets (0: let QEMU decide)", minimum=0)
    cores: int = opt(0, "Cores per socket (0: let QEMU decide)", minimum=0)
    threads: int = opt(0, "Threads per core (0: let QEMU decide)", minimum=0)
    cpu_model: str = opt("", "QEMU -cpu model (for example 'host' or 'max')")
    memory: int = opt(512, "Memory in MiB", minimum=1)
    machine_type: str = opt("pc", "QEMU machine type (pc, q35, ...)")
    firmware: str = opt("", "Firmware file passed as -bios (for example an OVMF image)")
    use_pflash: bool = opt(False, "Pass firmware as a pflash drive instead of -bios")
    efi_boot: bool = opt(False, "Boot with UEFI (OVMF) firmware as pflash code and vars")
    efi_firmware_code: str = opt("/usr/share/OVMF/OVMF_CODE_4M.fd", "OVMF code image (Debian package ovmf)")
    efi_firmware_vars: str = opt("/usr/share/OVMF/OVMF_VARS_4M.fd", "OVMF vars template, copied per build")
    efi_drop_efivars: bool = opt(False, "Do not keep the EFI vars file with the artifacts")
    vtpm: bool = opt(False, "Attach a software TPM (swtpm)", supported=False)
    use_tpm1: bool = opt(False, "Emulate TPM 1.2 instead of 2.0", supported=False)
    tpm_device_type: str = opt("tpm-tis", "TPM device model", supported=False)
    disk_size: int = opt(
        "40960M", "Disk size: a number (MiB) or with a unit (5120M, 40G); 0 means the default", kind="size",
        zero_is_default=True,
    )  # fmt: skip
    disk_additional_size: list[int] = opt(
        factory=list, doc="Sizes of extra disks, created beside the first", kind="size"
    )
    disk_interface: str = opt("virtio", "How the disk is attached", choices=DISK_INTERFACES)
    # The build VM's disk is throwaway until the clean shutdown, when QEMU writes everything out: vmbake's
    # defaults trade crash safety the build does not need for speed. Packer's: writeback, ignore, off.
    disk_cache: str = opt(
        "unsafe",
        "QEMU disk cache mode (vmbake's default 'unsafe' skips the guest's flushes; Packer's is 'writeback')",
        choices=("writethrough", "writeback", "none", "unsafe", "directsync"),
    )
    disk_discard: str = opt(
        "unmap",
        "Pass guest TRIM to the image: 'unmap' (vmbake's default) or 'ignore' (Packer's)",
        choices=("unmap", "ignore"),
    )
    disk_detect_zeroes: str = opt(
        "unmap",
        "Turn written zeroes into holes: 'unmap' (vmbake's default, so zero-filling free space costs no "
        "disk), 'on' or 'off' (Packer's); with disk_discard 'ignore', 'unmap' acts as 'on'",
        choices=("on", "off", "unmap"),
    )
    disk_image: bool = opt(False, "The ISO URL is a disk image to boot instead of an installer")
    use_backing_file: bool = opt(False, "Use the disk_image as a qcow2 backing file instead of copying it")
    skip_resize_disk: bool = opt(False, "Do not resize a disk_image to disk_size")
    skip_compaction: bool = opt(False, "Do not compact the disk with qemu-img convert at the end")
    disk_compression: bool = opt(False, "Compress the qcow2 clusters when compacting")
    compression_type: str = opt(
        "auto",
        "qcow2 cluster compression: 'zstd', 'zlib', or 'auto' (zstd when qemu-img has it)",
        choices=("auto", "zstd", "zlib"),
        vmbake=True,
    )
    format: str = opt("qcow2", "Output disk format", choices=("qcow2", "raw"))
    headless: bool = opt(False, "Do not show a display window")
    display: str = opt("", "QEMU -display option ('none' passes none)")
    use_default_display: bool = opt(False, "Pass no -display option at all")
    vga: str = opt("", "QEMU -vga option")
    net_device: str = opt("virtio-net", "Network device model", choices=NET_DEVICES)
    net_bridge: str = opt("", "Bridge to attach the NIC to instead of user networking", supported=False)
    cdrom_interface: str = opt("", "How CD-ROMs are attached (default: QEMU's -cdrom)")
    output_directory: str = opt("", "Where the artifacts go (default: output-BUILDNAME)")
    vm_name: str = opt("", "Name of the VM and of the disk file (default: packer-BUILDNAME)")
    qemuargs: list[list[str]] = opt(
        factory=list,
        doc="Extra QEMU arguments; a flag given here replaces vmbake's default for it",
        runtime=True,
    )
    qemu_img_args: QemuImgArgs = opt(
        factory=QemuImgArgs, doc="Extra arguments for qemu-img create/convert/resize"
    )
    qemu_binary: str = opt("qemu-system-x86_64", "The QEMU program")
    qmp_enable: bool = opt(False, "Packer's switch for the QMP socket; vmbake always opens one")
    qmp_socket_path: str = opt("", "Where the QMP socket is made (default: inside a private temp dir)")
    run_once: bool = opt(False, "Deprecated Packer key", supported=False)
    size_budget: int | None = opt(
        "",
        "Fail the build when the artifact is larger than this (for example 120MiB)",
        kind="size",
        vmbake=True,
    )
    verify: bool = opt(
        False, "Boot the finished image and check it reaches SSH, as the last step", vmbake=True
    )


@dataclass(frozen=True)
class InstallerConfig:
    """vmbake's ways to start the Debian installer without typing (see the docs)."""

    installer_boot: str = opt(
        "cdrom",
        "'cdrom' boots the ISO and types boot_command; 'kernel' boots d-i's kernel directly",
        choices=("cdrom", "kernel"),
        vmbake=True,
    )
    kernel_args: str = opt("", "Kernel command line for installer_boot 'kernel'", runtime=True, vmbake=True)
    iso_source: str = opt(
        "iso",
        "'iso' uses iso_url; 'debian-netboot' takes d-i from Debian's archive for `suite`",
        choices=("iso", "debian-netboot"),
        vmbake=True,
    )
    suite: str = opt("", "Debian suite for iso_source 'debian-netboot' (bookworm, trixie, ...)", vmbake=True)
    mirror: str = opt(
        "http://deb.debian.org/debian", "Debian mirror for iso_source 'debian-netboot'", vmbake=True
    )
    preseed_file: str = opt("", "Preseed appended to the installer initrd as /preseed.cfg", vmbake=True)
    apt_proxy: str = opt(
        "",
        "HTTP package proxy for the netboot fetch and {{ .AptProxy }} (the preseed's mirror/http/proxy); "
        "default: APT_PROXY or http_proxy from the environment",
        vmbake=True,
    )


@dataclass(frozen=True)
class QemuConfig(
    ISOConfig,
    HTTPConfig,
    FloppyCDConfig,
    BootConfig,
    ShutdownConfig,
    CommConfig,
    MachineConfig,
    InstallerConfig,
    LoginConfig,
):
    """Every key of a `qemu` builder block."""
