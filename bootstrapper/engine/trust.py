"""Before root runs a file: is it the file we verified, and could anyone else have changed it?

The file and every folder above it must belong to root (or, in the sandbox, to the daemon's own
user) and be writable by nobody else — a world-writable folder is tolerated only with the sticky bit
and a root owner (like /tmp), where others cannot rename or replace our entries. The sha256 is
checked again right before the run, because the check and the run are separate moments.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def untrusted_reason(
    path: Path, owner_uid: int, sha256: str | None = None, *, executable: bool = True
) -> str | None:
    """Why root must not run `path`, or None when it may."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"{path}: cannot be inspected ({exc.strerror})"
    if stat.S_ISLNK(st.st_mode):
        return f"{path}: is a symbolic link; refusing to follow it"
    if not stat.S_ISREG(st.st_mode):
        return f"{path}: is not a regular file"
    if st.st_uid not in (0, owner_uid):
        return f"{path}: is owned by uid {st.st_uid}, not root"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path}: can be changed by other users (mode {stat.S_IMODE(st.st_mode):o})"
    for folder in path.parents:
        try:
            fst = os.stat(folder)
        except OSError as exc:
            return f"{folder}: cannot be inspected ({exc.strerror})"
        if fst.st_uid not in (0, owner_uid):
            return f"{folder}: is owned by uid {fst.st_uid}, so that user could swap {path.name}"
        writable = fst.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        sticky_root = fst.st_mode & stat.S_ISVTX and fst.st_uid == 0
        if writable and not sticky_root:
            return f"{folder}: can be changed by other users (mode {stat.S_IMODE(fst.st_mode):o})"
    if executable:
        with path.open("rb") as fh:
            if fh.read(2) != b"#!":
                return f"{path}: has no #! line; start the script with one, e.g. #!/bin/sh"
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != sha256:
            return f"{path}: changed since it was verified (sha256 {actual}, expected {sha256})"
    return None
