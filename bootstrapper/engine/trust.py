"""Before a script runs: is it the file we verified, and could anyone else have changed it?

One check for both sides: the daemon calls it before root runs a file, the agent before it runs a
user step the daemon sent. The file and every folder above it must belong to root or a trusted uid
(the daemon's own user in the sandbox; the user themself for the agent) and be writable by nobody
else — a world-writable folder is tolerated only with the sticky bit and a root owner (like /tmp),
where others cannot rename or replace our entries. The checks, the #! line and the sha256 all use one
descriptor opened without following a symlink, so the file checked is the file hashed; the hash is
checked again right before the run, because the check and the run are separate moments.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Collection
from pathlib import Path

from bootstrapper.hashing import sha256_file


def untrusted_reason(
    path: Path | str,
    trusted: int | Collection[int],
    sha256: str | None = None,
    *,
    executable: bool = True,
) -> str | None:
    """Why `path` must not be run, or None when it may; root (uid 0) is always trusted."""
    path = Path(path)
    uids = {0, trusted} if isinstance(trusted, int) else {0, *trusted}
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{path}: is a symbolic link; refusing to follow it"
        return f"{path}: cannot be opened ({exc.strerror})"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return f"{path}: is not a regular file"
        if st.st_uid not in uids:
            return f"{path}: is owned by uid {st.st_uid}, not {_who(uids)}"
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return f"{path}: can be changed by other users (mode {stat.S_IMODE(st.st_mode):o})"
        problem = _folders(path, uids)
        if problem is not None:
            return problem
        if executable and os.pread(fd, 2, 0) != b"#!":
            return f"{path}: has no #! line; start the script with one, e.g. #!/bin/sh"
        if sha256 is not None:
            actual = sha256_file(fd)
            if actual != sha256:
                return f"{path}: changed since it was verified (sha256 {actual}, expected {sha256})"
    except OSError as exc:
        return f"{path}: cannot be read ({exc.strerror or exc})"
    finally:
        os.close(fd)
    return None


def _folders(path: Path, uids: set[int]) -> str | None:
    for folder in path.absolute().parents:
        try:
            fst = os.stat(folder)
        except OSError as exc:
            return f"{folder}: cannot be inspected ({exc.strerror})"
        if fst.st_uid not in uids:
            return f"{folder}: is owned by uid {fst.st_uid}, so that user could swap {path.name}"
        writable = fst.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        sticky_root = fst.st_mode & stat.S_ISVTX and fst.st_uid == 0
        if writable and not sticky_root:
            return f"{folder}: can be changed by other users (mode {stat.S_IMODE(fst.st_mode):o})"
    return None


def _who(uids: set[int]) -> str:
    others = sorted(uids - {0})
    if not others:
        return "root"
    return "root or uid " + ", ".join(map(str, others))
