"""Every system path the program touches, derived from one root prefix.

On a real Mac the root is `/`; in the sandbox (demo, end-to-end tests, dry runs) it is a folder,
and the whole simulated system lives under it. Nothing else in the package spells a system path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

DAEMON_LABEL = "org.bootstrapper.daemon"
AGENT_LABEL = "org.bootstrapper.agent"
PREFS_DOMAIN = "org.bootstrapper"
PACKAGE_ID = "org.bootstrapper.pkg"

#: Where the installed program lives on a real Mac (the package payload puts it there).
INSTALL_DIR = PurePosixPath("/Library/bootstrapper")


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

    @property
    def install_dir(self) -> Path:
        return self.system(INSTALL_DIR)

    @property
    def staging_dir(self) -> Path:
        """Downloads land here first: 0700, root only, then they are renamed into place."""
        return self.install_dir / ".staging"

    @property
    def state_file(self) -> Path:
        return self.install_dir / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.install_dir / "daemon.lock"

    @property
    def config_plist(self) -> Path:
        """Settings shipped inside our own package."""
        return self.install_dir / "config.plist"

    @property
    def managed_prefs(self) -> Path:
        return self.system(f"/Library/Managed Preferences/{self.prefs_domain}.plist")

    @property
    def log_dir(self) -> Path:
        """Logs and the completion record; kept after self-removal for inventory tools."""
        return self.system("/Library/Logs/bootstrapper")

    @property
    def result_file(self) -> Path:
        return self.log_dir / "result.json"

    @property
    def run_dir(self) -> Path:
        """Root-owned, 0755: holds the agent socket."""
        return self.system("/var/run/bootstrapper")

    @property
    def socket(self) -> Path:
        return self.run_dir / "ipc.sock"

    @property
    def launch_daemon_plist(self) -> Path:
        return self.system(f"/Library/LaunchDaemons/{self.daemon_label}.plist")

    @property
    def launch_agent_plist(self) -> Path:
        return self.system(f"/Library/LaunchAgents/{self.agent_label}.plist")

    @property
    def receipts_dir(self) -> Path:
        return self.system("/var/db/receipts")

    @property
    def launchd_journal(self) -> Path:
        """Sandbox only: the launchd operations the simulated macOS recorded."""
        return self.system("/var/db/bootstrapper-sandbox/launchd.jsonl")


def _normalize(path: Path) -> Path:
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            if len(parts) > 1:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return Path(*parts) if parts else Path()
