"""Append-only command files read by a GUI helper (swiftDialog, DEPNotify) running as the user.

Both helpers default to a file in `/var/tmp`, which every user can write to. A file planted there in
advance (a symlink to `/etc/sudoers`, or a file owned by someone else that they keep writing commands
into) must not be followed or trusted: the file is opened without following symlinks and refused unless
we own it. It is emptied when opened, since both helpers replay an existing file on launch and a
previous attempt's `quit` would close the new window at once.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO

from bootstrapper.errors import PlatformError


class CommandFile:
    """Writes whole lines, flushed at once, so the helper never reads half a command."""

    def __init__(self, path: Path, *, mode: int = 0o644) -> None:
        self.path = path
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags, mode)
        except OSError as exc:
            raise PlatformError(f"cannot open the command file {path}: {exc.strerror}") from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            os.close(fd)
            raise PlatformError(f"refusing the command file {path}: not a regular file that we own")
        os.ftruncate(fd, 0)
        os.fchmod(fd, mode)
        self._fh: IO[str] | None = os.fdopen(fd, "a", encoding="utf-8")

    def write(self, *lines: str) -> None:
        if self._fh is None:
            return
        self._fh.write("".join(f"{line}\n" for line in lines))
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            fh.close()
