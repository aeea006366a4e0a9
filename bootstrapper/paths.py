"""Every system path the program touches, derived from one root prefix.

On a real Mac the root is `/`; in the sandbox (demo, end-to-end tests, dry runs) it is a folder,
and the whole simulated system lives under it. Nothing else in the package spells a system path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import overload

DAEMON_LABEL = "org.bootstrapper.daemon"
AGENT_LABEL = "org.bootstrapper.agent"
PREFS_DOMAIN = "org.bootstrapper"
PACKAGE_ID = "org.bootstrapper.pkg"

#: Where the installed program lives on a real Mac (the package payload puts it there).
INSTALL_DIR = PurePosixPath("/Library/bootstrapper")


class _MacPath:
    """A `Paths` attribute that is one macOS path mapped under the root, so the table in `Paths` reads
    as the paths a Mac has; `{name}` in it is the `Paths` field of that name (`{agent_label}`)."""

    def __init__(self, mac_path: str) -> None:
        self.mac_path = mac_path

    @overload
    def __get__(self, paths: None, owner: type[Paths]) -> _MacPath: ...
    @overload
    def __get__(self, paths: Paths, owner: type[Paths]) -> Path: ...
    def __get__(self, paths: Paths | None, owner: type[Paths]) -> Path | _MacPath:
        if paths is None:
            return self
        return paths.system(self.mac_path.format_map(vars(paths)))


@dataclass(frozen=True)
class Paths:
    root: Path = Path("/")
    prefs_domain: str = PREFS_DOMAIN
    daemon_label: str = DAEMON_LABEL
    agent_label: str = AGENT_LABEL

    def system(self, path: str | PurePosixPath) -> Path:
        """Map an absolute macOS path (`/Library/x`) to where it lives under the root prefix."""
        p = PurePosixPath(path)
        if not p.is_absolute():
            raise ValueError(f"expected an absolute path, got {str(path)!r}")
        return self.root.joinpath(*p.parts[1:])

    def contains(self, path: Path, base: Path) -> bool:
        """True when `path` (resolved lexically) stays inside `base`: the guard for every removal."""
        try:
            Path(*_normalize(path).parts).relative_to(_normalize(base))
        except ValueError:
            return False
        return True

    install_dir = _MacPath(str(INSTALL_DIR))
    #: Downloads land here first: 0700, root only, then they are renamed into place.
    staging_dir = _MacPath(f"{INSTALL_DIR}/.staging")
    state_file = _MacPath(f"{INSTALL_DIR}/state.json")
    lock_file = _MacPath(f"{INSTALL_DIR}/daemon.lock")
    #: Settings shipped inside our own package.
    config_plist = _MacPath(f"{INSTALL_DIR}/config.plist")
    managed_prefs = _MacPath("/Library/Managed Preferences/{prefs_domain}.plist")
    #: Logs and the completion record; kept after self-removal for inventory tools.
    log_dir = _MacPath("/Library/Logs/bootstrapper")
    result_file = _MacPath("/Library/Logs/bootstrapper/result.json")
    #: Root-owned, 0755: holds the agent socket.
    run_dir = _MacPath("/var/run/bootstrapper")
    socket = _MacPath("/var/run/bootstrapper/ipc.sock")
    launch_daemon_plist = _MacPath("/Library/LaunchDaemons/{daemon_label}.plist")
    launch_agent_plist = _MacPath("/Library/LaunchAgents/{agent_label}.plist")
    receipts_dir = _MacPath("/var/db/receipts")
    #: Sandbox only: the launchd operations the simulated macOS recorded.
    launchd_journal = _MacPath("/var/db/bootstrapper-sandbox/launchd.jsonl")


def _normalize(path: Path) -> Path:
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            if len(parts) > 1:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return Path(*parts) if parts else Path()
