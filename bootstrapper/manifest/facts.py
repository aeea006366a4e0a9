"""What a condition can ask about the Mac: a plain value, gathered by the platform, pure to evaluate."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Facts:
    #: Native architecture, Rosetta-aware: "arm64" or "x86_64".
    arch: str = "arm64"
    #: Product version, e.g. "14.6.1".
    os_version: str = "14.0"
    #: Model identifier, e.g. "Mac15,3" or "MacBookPro18,1".
    model: str = "Mac15,3"
    serial: str = ""
