"""An append-only log file: what the human and the JSON log share.

Appending (never rewriting) means a crash loses at most the line being written, and the next daemon
attempt adds to the same file. Created 0600 with its folder; flushed per line, fsynced on close.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO


class AppendLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0), 0o600)
        self._fh: IO[str] | None = os.fdopen(fd, "a", encoding="utf-8")

    @property
    def closed(self) -> bool:
        return self._fh is None

    def write_line(self, line: str) -> None:
        if self._fh is not None:
            self._fh.write(line + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
