"""sha256 of a file, and the one spelling of a sha256 we accept: 64 lower-case hex digits.

Downloads, the trust check before a script runs, package facts and deep validation all hash files
the same way: in 1 MiB blocks, never following a symlink unless the caller says the path is its own.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

#: A sha256 as we store and compare it (callers lower-case what a person wrote first).
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
BLOCK = 1 << 20


def is_sha256(text: str) -> bool:
    return SHA256_HEX.fullmatch(text) is not None


def feed_file(
    source: Path | str | int,
    hasher: hashlib._Hash | None = None,
    limit: int | None = None,
    *,
    follow_symlinks: bool = False,
) -> hashlib._Hash:
    """Feed a file (or its first `limit` bytes) to `hasher`, a new sha256 by default; blocking.

    `source` is a path, or an open descriptor read from its start and left open (so a caller that
    checked the file with `fstat` hashes exactly the file it checked).
    """
    h = hasher if hasher is not None else hashlib.sha256()
    if isinstance(source, int):
        fd, owned = source, False
    else:
        flags = os.O_RDONLY | os.O_CLOEXEC | (0 if follow_symlinks else os.O_NOFOLLOW)
        fd, owned = os.open(source, flags), True
    try:
        offset = 0
        while limit is None or offset < limit:
            block = os.pread(fd, BLOCK if limit is None else min(BLOCK, limit - offset), offset)
            if not block:
                break
            h.update(block)
            offset += len(block)
    finally:
        if owned:
            os.close(fd)
    return h


def sha256_file(source: Path | str | int, *, follow_symlinks: bool = False) -> str:
    """The hex sha256 of a whole file (see `feed_file`)."""
    return feed_file(source, follow_symlinks=follow_symlinks).hexdigest()
