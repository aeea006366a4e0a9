"""bootstrapper: the bootstrap tool for freshly enrolled Macs."""

__version__ = "0.1.0"
