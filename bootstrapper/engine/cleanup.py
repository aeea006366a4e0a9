"""Self-removal: leave the Mac as if bootstrapper had never been installed, except the record of
what it did (logs and the completion record, which inventory tools read).

Idempotent and safe after a partial install: every step tolerates what is already gone, and only
paths that `Paths` names (under our own prefixes, checked again here) are ever removed.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import pkgutil
import shutil
import stat
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import bootstrapper
from bootstrapper.errors import PlatformError, UnsafePathError
from bootstrapper.paths import PACKAGE_ID, Paths
from bootstrapper.safefile import open_dir

if TYPE_CHECKING:
    from bootstrapper.platform.base import Platform

log = logging.getLogger(__name__)


@dataclass
class CleanupReport:
    removed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def owned_paths(paths: Paths) -> list[Path]:
    """Everything we installed, as paths on this machine; the only things removal may touch."""
    return [
        paths.launch_agent_plist,
        paths.launch_daemon_plist,
        paths.install_dir,
        paths.run_dir,
    ]


def _remove(path: Path, paths: Paths, report: CleanupReport) -> None:
    """Remove one of ours, never following a link out of our folders.

    The parent is reached with `open_dir` (no folder another user planted on the way) and the name is
    removed relative to it: a symlink is unlinked, not followed, and a folder is removed with
    `rmtree(dir_fd=)`, which does not follow links inside it either.
    """
    allowed = {os.path.normpath(p) for p in owned_paths(paths)}
    if os.path.normpath(path) not in allowed or not paths.contains(path, paths.root):
        report.problems.append(f"refused to remove {path}: not one of ours")
        return
    try:
        parent = open_dir(path.parent.absolute())
    except UnsafePathError as exc:
        if os.path.lexists(path.parent):
            report.problems.append(f"refused to remove {path}: {exc}")
        return
    try:
        if stat.S_ISDIR(os.stat(path.name, dir_fd=parent, follow_symlinks=False).st_mode):
            shutil.rmtree(path.name, dir_fd=parent)
        else:
            os.unlink(path.name, dir_fd=parent)
    except FileNotFoundError:
        return
    except OSError as exc:
        report.problems.append(f"could not remove {path}: {exc.strerror}")
        return
    finally:
        os.close(parent)
    report.removed.append(str(path))


def load_ourselves() -> int:
    """Import every module of ours that is not loaded yet; return how many were.

    On a Mac our code and its Python live in the folder self-removal deletes, while this process
    goes on to forget the receipt, perhaps reboot, and boot itself out: a module first imported
    after that (a lazy import on one of those paths) would fail with its file gone.
    """
    loaded = 0
    for info in pkgutil.walk_packages(bootstrapper.__path__, "bootstrapper."):
        if info.name.endswith(".__main__") or info.name in sys.modules:
            continue
        try:
            importlib.import_module(info.name)
            loaded += 1
        except Exception as exc:  # one module this platform cannot load must not stop the removal
            log.debug("not preloaded: %s (%s)", info.name, exc)
    return loaded


async def remove_ourselves(platform: Platform, paths: Paths, agent_uids: Iterable[int]) -> CleanupReport:
    """Boot the agent out of each gui domain, remove our files and receipt; the daemon is last."""
    load_ourselves()
    report = CleanupReport()
    uids = set(agent_uids)
    try:
        uids |= await platform.gui_uids()  # launchd may hold copies in sessions we never served
    except PlatformError as exc:
        report.problems.append(f"could not list the login sessions: {exc}")
    for uid in sorted(uids):
        with contextlib.suppress(PlatformError):
            await platform.bootout(f"gui/{uid}", paths.agent_label)
    for path in owned_paths(paths):
        _remove(path, paths, report)
    try:
        await platform.forget_receipt(PACKAGE_ID)
    except PlatformError as exc:
        report.problems.append(f"could not forget our receipt: {exc}")
    for problem in report.problems:
        log.warning("cleanup: %s", problem)
    return report


async def boot_out_daemon(platform: Platform, paths: Paths) -> None:
    """The very last act on a Mac: launchd stops this process here."""
    with contextlib.suppress(PlatformError):
        await platform.bootout("system", paths.daemon_label)
