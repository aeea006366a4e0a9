"""Write a file so that readers see either the old bytes or the new ones, never a mix.

State, receipts and the completion record are read back after a crash or a power cut; a half-written
file there would be taken for truth. So: a temporary file in the same folder (same file system, so the
rename is atomic), fsync it, `os.replace` it over the target, then fsync the folder so that the rename
itself survives a power cut. On any error the temporary file is removed and the old file is untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` atomically and durably; the file gets `mode` whatever the umask."""
    folder = path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(folder)


def write_json_atomic(path: Path, obj: Any, mode: int = 0o600) -> None:
    """`write_atomic` for a JSON document: UTF-8, indented for people, newline-terminated."""
    text = json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    write_atomic(path, text.encode("utf-8"), mode)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable; some file systems refuse to fsync a folder, which is not fatal."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
