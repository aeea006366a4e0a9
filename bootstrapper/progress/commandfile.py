"""Append-only command files read by a GUI helper (swiftDialog, DEPNotify) running as the user.

Both helpers default to a file in `/var/tmp`, where every user can create names. Whatever is found
at the path — a previous attempt's file (both helpers replay an existing file on launch, and its
`quit` would close the new window at once), another user's file, a symlink, or a hard link to
`/etc/sudoers` — is never opened: a fresh file is created beside it and renamed over it
(`safefile.replace_command_file`), owned by us and readable by the user's helper.

If even that is unsafe (the folder itself is a planted symlink or writable by others), the progress
window is not worth the run: the file is turned off with one warning and writes are dropped.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import IO

from bootstrapper.safefile import UnsafePathError, replace_command_file

log = logging.getLogger(__name__)


class CommandFile:
    """Writes whole lines, flushed at once, so the helper never reads half a command."""

    def __init__(self, path: Path, *, mode: int = 0o644) -> None:
        self.path = path
        self._fh: IO[str] | None = None
        try:
            fd = replace_command_file(path, os.geteuid(), mode)
        except UnsafePathError as exc:
            log.warning("progress window updates are off: command file %s", exc)
            return
        self._fh = os.fdopen(fd, "a", encoding="utf-8")

    @property
    def active(self) -> bool:
        """False once the file was refused, failed or closed: nothing written reaches a helper."""
        return self._fh is not None

    def write(self, *lines: str) -> None:
        if self._fh is None:
            return
        try:
            self._fh.write("".join(f"{line}\n" for line in lines))
            self._fh.flush()
        except OSError as exc:
            log.warning("progress window updates are off: cannot write %s (%s)", self.path, exc.strerror)
            self.close()

    def close(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            try:
                fh.close()
            except OSError as exc:
                log.warning("command file %s: %s", self.path, exc.strerror)
