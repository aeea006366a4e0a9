"""What a run leaves outside its own folders, and its removal at the end.

An InstallApplications manifest places packages and scripts wherever its `file` says (often
`/Library/installapplications/`); InstallApplications deletes them when it is done, and so do we: a
left-over root script can hold secrets. Files the manifest *places* (rootfile, userfile) stay: they
are the point of those items. Folders the run created for its downloads are removed when empty.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from bootstrapper.manifest.kinds import SPECS
from bootstrapper.manifest.model import Manifest

HostPath = Callable[[str], Path]


def transient_files(manifest: Manifest) -> list[PurePosixPath]:
    """The Mac paths of downloads that only serve their step (packages, scripts). A script that was
    already on the Mac (no `url`) is not this run's download: it stays."""
    return [
        i.file
        for i in manifest.items
        if i.file is not None and i.url is not None and SPECS[i.type].kept_in_install_dir
    ]


def folders_to_create(manifest: Manifest, host_path: HostPath) -> list[str]:
    """The folders above those downloads that do not exist yet, deepest first."""
    missing: list[str] = []
    for file in transient_files(manifest):
        for folder in file.parents:
            if str(folder) == "/" or host_path(str(folder)).exists():
                break
            if str(folder) not in missing:
                missing.append(str(folder))
    return sorted(missing, key=lambda f: f.count("/"), reverse=True)


def remove_leftovers(manifest: Manifest, created: list[str], host_path: HostPath) -> list[str]:
    """Delete this run's transient downloads wherever they were placed, then the folders it created
    that are now empty. Returns what was removed. A link is removed, never followed."""
    removed: list[str] = []
    for file in transient_files(manifest):
        path = host_path(str(file))
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
            os.unlink(path)
            removed.append(str(file))
    for folder in sorted(created, key=lambda f: f.count("/"), reverse=True):
        with contextlib.suppress(OSError):  # not empty (someone else's files), or already gone
            os.rmdir(host_path(folder))
            removed.append(folder)
    return removed
