"""vmbake: bake minimal Debian virtual-machine images from Packer QEMU templates."""

__version__ = "0.1.0"
