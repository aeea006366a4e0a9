"""One sha256 of a file: by path (never through a symlink unless asked), by descriptor, or a prefix."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from bootstrapper.hashing import BLOCK, feed_file, is_sha256, sha256_file

DATA = os.urandom(2 * BLOCK + 17)


def test_a_file_hashes_like_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(DATA)
    assert sha256_file(path) == hashlib.sha256(DATA).hexdigest()


def test_a_prefix_continues_an_existing_hasher(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(DATA)
    h = hashlib.sha256(b"head")
    assert (
        feed_file(path, h, BLOCK + 3).hexdigest() == hashlib.sha256(b"head" + DATA[: BLOCK + 3]).hexdigest()
    )


def test_a_descriptor_is_hashed_from_its_start_and_left_open(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(DATA)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.read(fd, 5)
        assert sha256_file(fd) == hashlib.sha256(DATA).hexdigest()
        os.fstat(fd)  # still open
    finally:
        os.close(fd)


def test_a_symlink_is_refused_unless_followed_on_purpose(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"x")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(OSError, match="symbolic links") as info:
        sha256_file(link)
    assert info.value.errno == errno.ELOOP
    assert sha256_file(link, follow_symlinks=True) == hashlib.sha256(b"x").hexdigest()


def test_the_one_spelling_of_a_sha256() -> None:
    assert is_sha256("a" * 64)
    assert not is_sha256("A" * 64)  # callers lower-case what a person wrote
    assert not is_sha256("a" * 63) and not is_sha256("g" * 64) and not is_sha256("a" * 64 + "\n")
