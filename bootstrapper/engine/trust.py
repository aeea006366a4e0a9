"""Before a script runs by path: is it the file we verified, and could anyone else have changed it?

The one check for a file that is run where it lies: the agent calls it before it runs a user step
the daemon sent, and the daemon before it hands that step over. (What root runs or installs itself
is a copy only root can reach, made by `safefile.stage_copy`; it needs no check by path.) The file
is opened with `safefile.open_trusted`: every folder from `/` is walked on descriptors and must
belong to root, us or a trusted uid and be writable by nobody else (world-writable only with the
sticky bit and a root owner, like /tmp); the file must be regular, unshared, and equally owned. The
#! line and the sha256 are read from that same descriptor, so the file checked is the file hashed;
the hash is checked again right before the run, because the check and the run are separate moments.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

from bootstrapper.errors import UnsafePathError
from bootstrapper.hashing import sha256_file
from bootstrapper.safefile import open_trusted


def untrusted_reason(
    path: Path | str,
    trusted: int | Collection[int],
    sha256: str | None = None,
    *,
    executable: bool = True,
) -> str | None:
    """Why `path` must not be run, or None when it may; root (uid 0) and we are always trusted."""
    shown = os.path.abspath(path)
    try:
        fd = open_trusted(shown, owner=trusted)
    except UnsafePathError as exc:
        return str(exc)
    try:
        if executable and os.pread(fd, 2, 0) != b"#!":
            return f"{shown}: has no #! line; start the script with one, e.g. #!/bin/sh"
        if sha256 is not None:
            actual = sha256_file(fd)
            if actual != sha256:
                return f"{shown}: changed since it was verified (sha256 {actual}, expected {sha256})"
    except OSError as exc:
        return f"{shown}: cannot be read ({exc.strerror or exc})"
    finally:
        os.close(fd)
    return None
