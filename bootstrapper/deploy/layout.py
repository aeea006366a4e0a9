"""Where the package puts things, derived from `bootstrapper.paths` (the one source of labels and paths).

The launchd items run a small signed launcher (pkg/launcher/launcher.c) rather than the interpreter: it
carries our Developer ID (so Login Items settings and the Managed Login Items profile can name it), it
pins the interpreter and its flags (`-I`: no PYTHON* variables, no user site) in one place, and it gives
admins a `bootstrapper` command on the Mac for `status`. Which Python the bundle carries is a build
input (pkg/pins.toml), not something the installed program needs to know.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from bootstrapper import __version__
from bootstrapper.paths import INSTALL_DIR, PACKAGE_ID, Paths

#: Oldest macOS the package installs on: the first release on Apple silicon.
MIN_MACOS = "11.0"
HOST_ARCHITECTURES = ("arm64", "x86_64")

LAUNCHER = INSTALL_DIR / "bin" / "bootstrapper"
FRAMEWORK = INSTALL_DIR / "Python.framework"

#: The component package inside the product archive (the Distribution's pkg-ref points to it).
COMPONENT_PKG = "bootstrapper-component.pkg"
#: Seconds launchd waits before starting a job again after it exited.
THROTTLE_INTERVAL = 30


@dataclass(frozen=True)
class Folder:
    """A folder the package scripts create root:wheel with `mode` before any job starts."""

    path: PurePosixPath
    mode: str


def real_paths() -> Paths:
    """The paths on a real Mac: root `/`."""
    return Paths()


def folders(paths: Paths | None = None) -> list[Folder]:
    """Created by preinstall, re-asserted by postinstall; staging is root-only (downloads land there)."""
    p = paths or real_paths()
    return [
        Folder(PurePosixPath(p.install_dir), "0755"),
        Folder(PurePosixPath(p.staging_dir), "0700"),
        Folder(PurePosixPath(p.log_dir), "0755"),
        Folder(PurePosixPath(p.run_dir), "0755"),
    ]


def template_values(version: str = __version__) -> dict[str, str]:
    """Every `@NAME@` a package template may use."""
    p = real_paths()
    return {
        "VERSION": version,
        "PACKAGE_ID": PACKAGE_ID,
        "DAEMON_LABEL": p.daemon_label,
        "AGENT_LABEL": p.agent_label,
        "DAEMON_PLIST": str(p.launch_daemon_plist),
        "AGENT_PLIST": str(p.launch_agent_plist),
        "INSTALL_DIR": str(p.install_dir),
        "LOG_DIR": str(p.log_dir),
        "RESULT_FILE": str(p.result_file),
        "MANAGED_PREFS": str(p.managed_prefs),
        "LAUNCHER": str(LAUNCHER),
        "MIN_MACOS": MIN_MACOS,
        "HOST_ARCHITECTURES": ",".join(HOST_ARCHITECTURES),
        "COMPONENT_PKG": COMPONENT_PKG,
        "FOLDERS": "\n".join(f"    make_folder '{f.path}' {f.mode}" for f in folders()),
    }
