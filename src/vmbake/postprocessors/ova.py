"""The OVA of the `convert` post-processor: an OVF 1.0 descriptor, its manifest and streamOptimized vmdks.

DSP0243 (OVF 1.0) fixes the tar's order: the descriptor first, the manifest next, then the files in the
order of the descriptor's References. The manifest holds a `SHA256(name)= hex` line for the descriptor and
each disk (OVF 1.0 itself names SHA-1; SHA-256 is OVF 2.0's, and what current VMware and VirtualBox check). Each Disk's capacity is the vmdk's virtual size in bytes; its populatedSize is the data the
guest wrote (the allocated extents, as VMware's ovftool reports it), not the compressed file's size.

The hardware is generic and understood by VMware and VirtualBox: the `vmx-10` family, an LSI Logic SCSI
controller for the disks, one E1000 NIC on "VM Network", and the OS type Debian 64-bit (CIM id 96).
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

STREAM_OPTIMIZED = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
DEBIAN_64 = 96  # CIM_OperatingSystem.OsType "Debian 64-Bit"
NETWORK = "VM Network"


@dataclass(frozen=True)
class OvfDisk:
    """A streamOptimized vmdk of the OVA."""

    path: Path  # the file to put in the tar
    name: str  # its member name in the tar
    capacity: int  # virtual size in bytes
    populated: int  # bytes of data in it


@dataclass(frozen=True)
class OvfHardware:
    cpus: int
    memory_mib: int
    efi: bool = False


def _item(**rasd: str | int) -> str:
    # The CIM schema is a sequence in alphabetical order; strict readers (ovftool) check it.
    body = "".join(f"        <rasd:{key}>{escape(str(rasd[key]))}</rasd:{key}>\n" for key in sorted(rasd))
    return f"      <Item>\n{body}      </Item>\n"


def descriptor(name: str, disks: list[OvfDisk], hardware: OvfHardware) -> str:
    """The OVF 1.0 envelope of one virtual system with `disks` (sizes as given) and `hardware`."""
    files = "".join(
        f'    <File ovf:href={quoteattr(d.name)} ovf:id="file{i}" ovf:size="{d.path.stat().st_size}"/>\n'
        for i, d in enumerate(disks, 1)
    )
    disk_lines = "".join(
        f'    <Disk ovf:capacity="{d.capacity}" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk{i}" '
        f'ovf:fileRef="file{i}" ovf:format="{STREAM_OPTIMIZED}" ovf:populatedSize="{d.populated}"/>\n'
        for i, d in enumerate(disks, 1)
    )
    items = _item(
        AllocationUnits="hertz * 10^6",
        Description="Number of Virtual CPUs",
        ElementName=f"{hardware.cpus} virtual CPU(s)",
        InstanceID=1,
        ResourceType=3,
        VirtualQuantity=hardware.cpus,
    )
    items += _item(
        AllocationUnits="byte * 2^20",
        Description="Memory Size",
        ElementName=f"{hardware.memory_mib}MB of memory",
        InstanceID=2,
        ResourceType=4,
        VirtualQuantity=hardware.memory_mib,
    )
    items += _item(
        Address=0,
        Description="SCSI Controller",
        ElementName="SCSI Controller 0",
        InstanceID=3,
        ResourceSubType="lsilogic",
        ResourceType=6,
    )
    for i, _disk in enumerate(disks, 1):
        items += _item(
            AddressOnParent=i - 1,
            ElementName=f"Hard Disk {i}",
            HostResource=f"ovf:/disk/vmdisk{i}",
            InstanceID=10 + i,
            Parent=3,
            ResourceType=17,
        )
    items += _item(
        AddressOnParent=7,
        AutomaticAllocation="true",
        Connection=NETWORK,
        Description=f"E1000 ethernet adapter on {NETWORK}",
        ElementName="Network adapter 1",
        InstanceID=4,
        ResourceSubType="E1000",
        ResourceType=10,
    )
    firmware = (
        '      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>\n'
        if hardware.efi
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1"'
        ' xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"'
        ' xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"'
        ' xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"'
        ' xmlns:vmw="http://www.vmware.com/schema/ovf"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
        f"  <References>\n{files}  </References>\n"
        f"  <DiskSection>\n    <Info>Virtual disk information</Info>\n{disk_lines}  </DiskSection>\n"
        "  <NetworkSection>\n    <Info>The list of logical networks</Info>\n"
        f"    <Network ovf:name={quoteattr(NETWORK)}>\n      <Description>The {NETWORK} network</Description>\n"
        "    </Network>\n  </NetworkSection>\n"
        f"  <VirtualSystem ovf:id={quoteattr(name)}>\n    <Info>A virtual machine</Info>\n"
        f"    <Name>{escape(name)}</Name>\n"
        f'    <OperatingSystemSection ovf:id="{DEBIAN_64}">\n'
        "      <Info>The kind of installed guest operating system</Info>\n"
        "      <Description>Debian GNU/Linux (64-bit)</Description>\n    </OperatingSystemSection>\n"
        "    <VirtualHardwareSection>\n      <Info>Virtual hardware requirements</Info>\n      <System>\n"
        "        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>\n"
        "        <vssd:InstanceID>0</vssd:InstanceID>\n"
        f"        <vssd:VirtualSystemIdentifier>{escape(name)}</vssd:VirtualSystemIdentifier>\n"
        "        <vssd:VirtualSystemType>vmx-10</vssd:VirtualSystemType>\n      </System>\n"
        f"{items}{firmware}    </VirtualHardwareSection>\n  </VirtualSystem>\n</Envelope>\n"
    )


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def manifest(entries: list[tuple[str, Path]]) -> str:
    """The .mf: one `SHA256(name)= hex` line per (member name, file)."""
    return "".join(f"SHA256({name})= {sha256_of(path)}\n" for name, path in entries)


def write_ova(out: Path, name: str, disks: list[OvfDisk], hardware: OvfHardware, scratch: Path) -> None:
    """Write the OVA `out` (descriptor NAME.ovf, manifest NAME.mf, then the disks); `scratch` is a
    directory for the descriptor and manifest."""
    ovf = scratch / f"{name}.ovf"
    ovf.write_text(descriptor(name, disks, hardware), encoding="utf-8")
    mf = scratch / f"{name}.mf"
    mf.write_text(manifest([(ovf.name, ovf)] + [(d.name, d.path) for d in disks]), encoding="utf-8")
    umask = os.umask(0)
    os.umask(umask)

    def plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mode = 0o644
        return info

    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tar:
        for path, member in [(ovf, ovf.name), (mf, mf.name)] + [(d.path, d.name) for d in disks]:
            tar.add(path, member, recursive=False, filter=plain)
    out.chmod(0o666 & ~umask)
