"""What a condition can ask about the Mac: a plain value, gathered by the platform, pure to evaluate."""

from __future__ import annotations

from dataclasses import dataclass

#: The macOS version assumed where the real one is unknown (`plan` on Linux, the sandbox platform):
#: one value, so that a plan and a sandbox run skip the same steps.
DEFAULT_OS_VERSION = "14.0"


@dataclass(frozen=True)
class Facts:
    #: Native architecture, Rosetta-aware: "arm64" or "x86_64".
    arch: str = "arm64"
    #: Product version, e.g. "14.6.1".
    os_version: str = DEFAULT_OS_VERSION
    #: Model identifier, e.g. "Mac15,3" or "MacBookPro18,1".
    model: str = "Mac15,3"
    serial: str = ""
