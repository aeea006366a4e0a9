"""Read macOS flat packages (xar): facts, payload streams, safe extraction.

`read_package(path)` opens, checks and summarizes a `.pkg`; `FlatPackage` gives the streams.
"""

from __future__ import annotations

from bootstrapper.flatpkg.package import Component, FlatPackage, PackageFacts, read_facts

read_package = read_facts

__all__ = ["Component", "FlatPackage", "PackageFacts", "read_package"]
