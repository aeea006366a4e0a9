"""The disk side: a full disk, planted symlinks, the staging folder, files already in place."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from bootstrapper.errors import DiskFullError, StagingError
from bootstrapper.fetch import Finished
from tests.fetch.conftest import DATA, Harness
from tests.support.httpfault import FaultServer


class FillsUp:
    """Writes really go to disk until `room` bytes are used, then fail as a full disk does.

    The honest seam: a tiny filesystem needs root to mount, so the kernel's ENOSPC is simulated at
    the one call that writes the part file (`Downloader(write=...)`); everything after it (the error,
    the clean-up) is the real code path.
    """

    def __init__(self, room: int) -> None:
        self.room = room

    def __call__(self, fd: int, data: memoryview) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = os.write(fd, data[: self.room])
        self.room -= n
        return n


def test_enospc_while_writing_leaves_no_partial_file(h: Harness, srv: FaultServer) -> None:
    url = srv.add("/f", lambda ex: ex.serve(DATA))
    err = h.fail(h.item(url), write=FillsUp(300_000))
    assert isinstance(err, DiskFullError)
    assert "disk is full" in str(err) and url in str(err)
    assert h.sleeps == [], "retrying does not free disk space"
    assert h.parts() == []
    assert not h.dest.exists()


def test_size_larger_than_the_free_space_is_refused_before_downloading(h: Harness, srv: FaultServer) -> None:
    url = srv.add("/f", lambda ex: ex.serve(DATA))
    err = h.fail(h.item(url, size=2**60))
    assert isinstance(err, DiskFullError) and "free some space" in str(err)
    assert srv.seen == []


def test_symlink_planted_at_dest_is_replaced_not_followed(
    h: Harness, srv: FaultServer, tmp_path: Path
) -> None:
    victim = tmp_path / "etc-sudoers"
    victim.write_bytes(b"root ALL=(ALL) ALL\n")
    h.dest.parent.mkdir(parents=True)
    h.dest.symlink_to(victim)
    h.fetch(h.item(srv.add("/f", lambda ex: ex.serve(DATA))))
    assert victim.read_bytes() == b"root ALL=(ALL) ALL\n"
    assert not h.dest.is_symlink() and h.dest.read_bytes() == DATA


def test_symlink_planted_as_a_part_file_is_not_followed(h: Harness, srv: FaultServer, tmp_path: Path) -> None:
    from bootstrapper.fetch.staging import Part

    url = srv.add("/f", lambda ex: ex.serve(DATA))
    item = h.item(url)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    h.staging.mkdir(mode=0o700)
    part = Part.for_item(h.staging, item.url, item.sha256)
    part.path.symlink_to(victim)
    assert h.fetch(item).read_bytes() == DATA
    assert victim.read_bytes() == b"precious"


def test_placed_file_has_the_item_mode_and_folders_are_created(h: Harness, srv: FaultServer) -> None:
    dest = h.root / "a" / "b" / "script.sh"
    h.fetch(h.item(srv.add("/f", lambda ex: ex.serve(DATA)), dest=dest, mode=0o755))
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755
    assert dest.parent.is_dir()


def test_staging_folder_is_private(h: Harness, srv: FaultServer) -> None:
    h.staging.mkdir(mode=0o777)
    os.chmod(h.staging, 0o777)
    h.fetch(h.item(srv.add("/f", lambda ex: ex.serve(DATA))))
    assert stat.S_IMODE(h.staging.stat().st_mode) == 0o700


def test_staging_folder_that_is_a_symlink_is_refused(h: Harness, srv: FaultServer, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    h.staging.symlink_to(elsewhere)
    err = h.fail(h.item(srv.add("/f", lambda ex: ex.serve(DATA))))
    assert isinstance(err, StagingError) and "symlink" in str(err)
    assert srv.seen == []


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_staging_folder_owned_by_someone_else_is_refused(h: Harness, srv: FaultServer) -> None:
    h.staging.mkdir(mode=0o700)
    os.chown(h.staging, 501, 20)
    err = h.fail(h.item(srv.add("/f", lambda ex: ex.serve(DATA))))
    assert isinstance(err, StagingError) and "owned by uid 501" in str(err)


def test_file_already_in_place_is_not_downloaded_again(h: Harness, srv: FaultServer) -> None:
    url = srv.add("/f", lambda ex: ex.serve(DATA))
    h.fetch(h.item(url))
    h.events.clear()
    h.fetch(h.item(url))
    assert len(srv.seen) == 1
    assert h.events == [Finished("userland[0]", h.dest, len(DATA), cached=True)]


def test_wrong_file_in_place_is_replaced(h: Harness, srv: FaultServer) -> None:
    h.dest.parent.mkdir(parents=True)
    h.dest.write_bytes(b"an older version")
    assert h.fetch(h.item(srv.add("/f", lambda ex: ex.serve(DATA)))).read_bytes() == DATA
