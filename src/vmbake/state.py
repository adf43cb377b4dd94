"""The typed state of one build: what the user asked for (frozen) and what the steps found (mutable).

There is no string-keyed bag: each step's docstring says which of these fields it reads and writes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vmbake.ui import BuildUi

if TYPE_CHECKING:
    from vmbake.bootstrap.tree import RawDisk
    from vmbake.comm import Communicator
    from vmbake.config.bootstrap import BootstrapConfig
    from vmbake.config.null import NullConfig
    from vmbake.config.qemu import QemuConfig
    from vmbake.httpserver import HttpServer
    from vmbake.procs import Child
    from vmbake.qmp import Qmp
    from vmbake.report.collect import ImageFacts
    from vmbake.template.model import PostProcessorSpec, ProvisionerSpec, Template
    from vmbake.vmwatch import VmWatch


@dataclass(frozen=True)
class Options:
    """Command-line options that change how a build runs."""

    debug: bool = False
    force: bool = False
    on_error: str = "cleanup"  # cleanup | abort | ask
    report: bool = True
    parallel_builds: int = 0  # how many builds run at once; 0 (or less) means no limit, as in Packer


@dataclass(frozen=True)
class Artifact:
    """A file the build produced, as listed at the end ("VM files in directory: ...")."""

    builder_id: str
    path: Path
    description: str


@dataclass
class BuildState:
    """Facts discovered while building; every field starts empty and one step fills it."""

    work_dir: Path | None = None  # private 0700 temp dir: keys, QMP socket, scratch files
    iso_path: Path | None = None  # the checked installer ISO (or disk image when disk_image)
    kernel_path: Path | None = None  # d-i kernel for installer_boot 'kernel'
    initrd_path: Path | None = None  # d-i initrd (with an appended preseed when preseed_file)
    output_dir: Path | None = None
    disk_paths: list[Path] = field(default_factory=list)  # the first is the main disk
    efivars_path: Path | None = None
    floppy_path: Path | None = None
    cd_path: Path | None = None
    http_ip: str = "10.0.2.2"  # the host as the guest sees it through SLIRP
    http_port: int | None = None
    http_server: HttpServer | None = None
    vnc_port: int | None = None
    vnc_password: str = ""
    ssh_host_port: int | None = None  # host side of the forward to the guest's SSH port
    net_probe_port: int | None = None  # host side of the forward to a closed guest port (comm.probe)
    ssh_public_key: str = ""  # OpenSSH line of the key the guest must accept
    ssh_private_key_path: Path | None = None
    ssh_host_key: str = ""  # pinned at the first connection
    accelerator: str = ""
    qmp_path: Path | None = None
    qmp: Qmp | None = None  # once connected
    vm_watch: VmWatch | None = None  # while QEMU runs
    qemu: Child | None = None
    qemu_argv: list[str] = field(default_factory=list)
    console_log: Path | None = None
    comm: Communicator | None = None
    artifacts: list[Artifact] = field(default_factory=list)
    step_times: list[tuple[str, float]] = field(default_factory=list)
    report: ImageFacts | None = None  # facts gathered for the image report
    rootfs_tarball: Path | None = None  # debian-bootstrap: the mmdebstrap output
    kept_apt_lists: bool = False  # debian-bootstrap: mmdebstrap left its package lists for the provisioners
    raw_disk: RawDisk | None = None  # debian-bootstrap, provision_stage "tree": the disk being provisioned
    shutdown_done: bool = False


@dataclass
class BuildContext:
    """Everything a step sees: the build's name and config, the template, the options, the state."""

    name: str  # the build's name, as in "==> qemu: ..."
    builder_type: str  # "qemu", "debian-bootstrap" or "null"
    # The build's own config. The debian-bootstrap builder sets a QemuConfig view here before the QEMU
    # builder's steps (they narrow with steps._qemu.qemu_config); its own steps get its BootstrapConfig directly.
    config: QemuConfig | BootstrapConfig | NullConfig
    template: Template
    ui: BuildUi
    options: Options
    provisioners: list[ProvisionerSpec] = field(default_factory=list)  # this build's, decoded for it
    error_cleanup_provisioner: ProvisionerSpec | None = None
    post_processors: list[list[PostProcessorSpec]] = field(default_factory=list)
    state: BuildState = field(default_factory=BuildState)
    cancel: threading.Event = field(default_factory=threading.Event)
    failed: bool = False  # set when a step failed; cleanups that keep or remove results read it
    cancelled: bool = False
    watcher_failure: tuple[str, str] | None = None  # (message, hint) of a failure found off the step's thread

    def fail_from_watcher(self, message: str, hint: str) -> None:
        """End the running step as a failure with `message`, from another thread (see vmbake.vmwatch).

        Every wait of a step polls `cancel`; the runner then reports this failure instead of a cancel."""
        if self.watcher_failure is None:
            self.watcher_failure = (message, hint)
        self.cancel.set()

    @property
    def halted(self) -> bool:
        """True when the build did not succeed: cleanups remove or mark what they made."""
        return self.failed or self.cancelled
