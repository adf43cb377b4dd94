"""Typed configuration: frozen dataclasses whose fields carry their Packer key, default and description."""
