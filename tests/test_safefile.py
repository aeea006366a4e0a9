"""The safe-file layer against a second local user, played by uid 501 in real subprocesses.

Each test builds a small Mac under a root-owned 0755 folder (`/Library`-like folders, a sticky
world-writable `Shared` like /Users/Shared and /var/tmp, a home owned by the attacker) and checks
that what the attacker prepares never reaches or redirects what root does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrapper import safefile
from bootstrapper.errors import RunError, UnsafePathError

ATTACKER = 501
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="acting as a second user needs root")

GOOD = b"#!/bin/sh\necho the admin's package\n"
EVIL = b"#!/bin/sh\necho the attacker's package\n"
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()


def attacker(script: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script as the second user (no account needed), as a local attacker would."""
    return subprocess.run(
        ["/bin/sh", "-c", script],
        user=ATTACKER,
        group=ATTACKER,
        extra_groups=[],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def attack(script: str) -> None:
    result = attacker(script)
    assert result.returncode == 0, result.stderr


def plant(data: bytes, dest: Path) -> None:
    """The attacker writes `data` at `dest` (through a world-readable file root prepared)."""
    bait = Path(tempfile.mkdtemp(dir="/tmp")) / "bait"
    bait.parent.chmod(0o755)
    bait.write_bytes(data)
    bait.chmod(0o644)
    try:
        attack(f"cp {bait} {dest}")
    finally:
        shutil.rmtree(bait.parent)


@pytest.fixture
def mac() -> Iterator[Path]:
    """A root-owned 0755 folder the attacker can traverse (tmp_path's parents are 0700)."""
    root = Path(tempfile.mkdtemp(prefix="safefile-", dir="/tmp"))
    root.chmod(0o755)
    (root / "Library").mkdir(mode=0o755)
    (root / "Library" / "bootstrapper").mkdir(mode=0o755)
    staging = root / "Library" / "bootstrapper" / "staging"
    staging.mkdir(mode=0o700)
    shared = root / "Shared"
    shared.mkdir()
    shared.chmod(0o1777)
    if os.geteuid() == 0:
        home = root / "Users" / "attacker"
        home.mkdir(parents=True, mode=0o755)
        (root / "Users").chmod(0o755)
        os.chown(home, ATTACKER, ATTACKER)
    try:
        yield root
    finally:
        shutil.rmtree(root)


def _victim(mac: Path) -> Path:
    """A root-only file, like /etc/sudoers."""
    victim = mac / "Library" / "sudoers"
    victim.write_text("root ALL=(ALL) ALL\n")
    victim.chmod(0o440)
    return victim


# --- attack 1: a pre-planted package in a shared folder ---------------------------------------


@needs_root
def test_preplanted_file_with_the_right_hash_is_not_trusted(mac: Path) -> None:
    dest = mac / "Shared" / "app.pkg"
    plant(GOOD, dest)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == GOOD_SHA
    with pytest.raises(UnsafePathError, match=r"owned by uid 501, who could have changed it; not trusted"):
        safefile.open_verified(dest, GOOD_SHA)
    # the download replaces it with root's own copy, which is then trusted
    safefile.place_file(GOOD, dest, mode=0o644, sha256=GOOD_SHA)
    assert dest.stat().st_uid == 0
    fd = safefile.open_verified(dest, GOOD_SHA)
    os.close(fd)
    assert attacker(f"printf x >> {dest}").returncode != 0  # sticky folder: root's file stays root's
    assert attacker(f"rm -f {dest}").returncode != 0


@needs_root
def test_swap_after_check_does_not_reach_the_staged_copy(mac: Path) -> None:
    source = mac / "Shared" / "app.pkg"
    plant(GOOD, source)
    staged = safefile.stage_copy(source, GOOD_SHA, mac / "Library" / "bootstrapper" / "staging")
    plant(EVIL, source)  # the swap, after root's check
    assert staged.read_bytes() == GOOD
    info = staged.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode), info.st_nlink) == (0, 0o600, 1)
    assert staged.parent == mac / "Library" / "bootstrapper" / "staging"
    assert attacker(f"cat {staged}").returncode != 0


@needs_root
def test_swap_during_the_copy_never_yields_a_staged_copy_with_other_bytes(mac: Path) -> None:
    good = os.urandom(3 << 20)
    sha = hashlib.sha256(good).hexdigest()
    source = mac / "Shared" / "big.pkg"
    (mac / "good").write_bytes(good)
    (mac / "evil").write_bytes(os.urandom(3 << 20))
    attack(f"cp {mac}/good {source}")
    swapper = subprocess.Popen(  # rewrites the package in place, again and again, while root copies
        ["/bin/sh", "-c", f"while :; do cp {mac}/evil {source}; cp {mac}/good {source}; done"],
        user=ATTACKER,
        group=ATTACKER,
        extra_groups=[],
    )
    staging = mac / "Library" / "bootstrapper" / "staging"
    outcomes = {"refused": 0, "staged": 0}
    try:
        started = time.monotonic()
        # until the race has been lost by the attacker at least once and won by nobody
        while not outcomes["refused"] or time.monotonic() - started < 0.5:
            assert time.monotonic() - started < 60, "the swapper never changed the file mid-copy"
            try:
                staged = safefile.stage_copy(source, sha, staging)
            except UnsafePathError as exc:
                assert "changed while copying" in str(exc)
                outcomes["refused"] += 1
            else:
                assert hashlib.sha256(staged.read_bytes()).hexdigest() == sha
                outcomes["staged"] += 1
    finally:
        swapper.kill()
        swapper.wait()
    assert outcomes["refused"] > 0, outcomes  # the race was really run
    assert sorted(p.name for p in staging.iterdir() if p.name.startswith(".")) == []  # no leftovers


@needs_root
def test_user_owned_parent_folder_is_refused_for_a_root_file(mac: Path) -> None:
    attack(f"mkdir {mac}/Shared/pkgs")
    dest = mac / "Shared" / "pkgs" / "app.pkg"
    with pytest.raises(UnsafePathError, match=r"Shared/pkgs: is owned by uid 501"):
        safefile.place_file(GOOD, dest)
    assert not dest.exists()
    # a user file for that user may go there: it is theirs anyway, and made on the descriptor
    safefile.place_file(GOOD, dest, owner=(ATTACKER, ATTACKER), mode=0o640)
    info = dest.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (ATTACKER, ATTACKER, 0o640)


@needs_root
def test_folder_planted_by_the_user_where_root_would_create_one_is_refused(mac: Path) -> None:
    attack(f"mkdir {mac}/Shared/Fonts")
    with pytest.raises(UnsafePathError, match="Fonts: is owned by uid 501"):
        safefile.place_file(GOOD, mac / "Shared" / "Fonts" / "font.ttf")
    safefile.place_file(GOOD, mac / "Shared" / "Mine" / "deep" / "font.ttf")
    for folder in (mac / "Shared" / "Mine", mac / "Shared" / "Mine" / "deep"):
        info = folder.lstat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o755)


# --- attack 2: a hard-linked command file -----------------------------------------------------


@needs_root
def test_hard_linked_command_file_to_a_root_only_file_is_not_truncated(mac: Path) -> None:
    victim = _victim(mac)
    planted = mac / "Shared" / "depnotify.log"
    # Linux's fs.protected_hardlinks stops uid 501 making this link; macOS has no such guard, so
    # the link is made here as root, the way the attacker would make it on a Mac.
    os.link(victim, planted)
    fd = safefile.replace_command_file(planted, 0, 0o644)
    try:
        os.write(fd, b"Command: Quit\n")
    finally:
        os.close(fd)
    assert victim.read_text() == "root ALL=(ALL) ALL\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o440
    assert victim.stat().st_nlink == 1
    assert planted.read_text() == "Command: Quit\n"
    info = planted.lstat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode), info.st_nlink) == (0, 0o644, 1)
    assert attacker(f"cat {planted}").stdout == "Command: Quit\n"  # the user's helper can read it


@needs_root
def test_command_file_planted_by_the_user_is_replaced_not_reused(mac: Path) -> None:
    planted = mac / "Shared" / "dialog.log"
    attack(f"echo 'quit:' > {planted}; chmod 666 {planted}")
    fd = safefile.replace_command_file(planted, 0, 0o644)
    os.close(fd)
    info = planted.lstat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode), info.st_size) == (0, 0o644, 0)
    assert attacker(f"echo 'quit:' >> {planted}").returncode != 0


@needs_root
def test_hard_linked_file_is_not_trusted_as_verified(mac: Path) -> None:
    owned = mac / "Library" / "bootstrapper" / "tool"
    owned.write_bytes(GOOD)
    owned.chmod(0o644)
    os.link(owned, mac / "Library" / "other-name")
    with pytest.raises(UnsafePathError, match="2 hard links"):
        safefile.open_verified(owned, GOOD_SHA)


# --- attack 3: a symlinked parent folder ------------------------------------------------------


@needs_root
def test_symlinked_parent_folder_for_placement_is_refused(mac: Path) -> None:
    target = mac / "Library" / "LaunchDaemons"
    target.mkdir(mode=0o755)
    attack(f"ln -s {target} {mac}/Shared/Fonts")
    with pytest.raises(UnsafePathError, match="Shared/Fonts: is a symbolic link another user could"):
        safefile.place_file(GOOD, mac / "Shared" / "Fonts" / "evil.plist")
    assert list(target.iterdir()) == []


@needs_root
def test_symlinked_folder_in_the_users_home_does_not_redirect_a_user_file(mac: Path) -> None:
    target = mac / "Library" / "LaunchDaemons"
    target.mkdir(mode=0o755)
    home = mac / "Users" / "attacker"
    attack(f"ln -s {target} {home}/Library")
    with pytest.raises(UnsafePathError, match="is a symbolic link another user could"):
        safefile.place_file(GOOD, home / "Library" / "x.plist", owner=(ATTACKER, ATTACKER))
    assert list(target.iterdir()) == []


@needs_root
def test_symlink_planted_at_the_destination_is_replaced_not_followed(mac: Path) -> None:
    victim = _victim(mac)
    home = mac / "Users" / "attacker"
    attack(f"ln -s {victim} {home}/settings.plist")
    safefile.place_file(GOOD, home / "settings.plist", owner=(ATTACKER, ATTACKER), mode=0o644)
    assert victim.read_text() == "root ALL=(ALL) ALL\n"
    assert (victim.stat().st_uid, stat.S_IMODE(victim.stat().st_mode)) == (0, 0o440)
    placed = (home / "settings.plist").lstat()
    assert stat.S_ISREG(placed.st_mode)
    assert placed.st_uid == ATTACKER


@needs_root
def test_rootscript_folder_writable_by_the_user_is_refused(mac: Path) -> None:
    scripts = mac / "Library" / "scripts"
    scripts.mkdir(mode=0o755)
    os.chown(scripts, 0, ATTACKER)
    scripts.chmod(0o775)
    with pytest.raises(UnsafePathError, match=r"changed by other users \(mode 775\)"):
        safefile.place_file(GOOD, scripts / "run.sh", mode=0o700)


# --- what is accepted -------------------------------------------------------------------------


@needs_root
def test_sticky_world_writable_root_owned_folder_is_accepted(mac: Path) -> None:
    dest = mac / "Shared" / "readme.txt"
    digest = safefile.place_file(GOOD, dest, mode=0o644)
    assert digest == GOOD_SHA
    assert dest.read_bytes() == GOOD
    assert (dest.stat().st_uid, stat.S_IMODE(dest.stat().st_mode)) == (0, 0o644)
    (mac / "Shared").chmod(0o777)  # the same folder without the sticky bit
    with pytest.raises(UnsafePathError, match=r"mode 777\); chmod go-w"):
        safefile.place_file(GOOD, dest)


def test_root_owned_symlink_in_a_root_only_folder_is_followed(tmp_path: Path) -> None:
    """Like macOS's /var -> private/var: nobody but its owner could have made it."""
    (tmp_path / "private" / "var").mkdir(parents=True)
    (tmp_path / "var").symlink_to("private/var")
    dest = tmp_path / "var" / "x"
    safefile.place_file(b"x", dest)
    assert (tmp_path / "private" / "var" / "x").read_bytes() == b"x"


def test_placing_from_a_descriptor_copies_from_its_start_and_checks_the_hash(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.write_bytes(GOOD)
    with source.open("rb") as fh:
        fh.read(5)
        safefile.place_file(fh.fileno(), tmp_path / "a", sha256=GOOD_SHA)
        with pytest.raises(UnsafePathError, match="changed while copying"):
            safefile.place_file(fh.fileno(), tmp_path / "b", sha256="0" * 64)
    assert (tmp_path / "a").read_bytes() == GOOD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "src"]


def test_a_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(UnsafePathError, match="not a regular file"):
        safefile.open_verified(tmp_path / "pipe", GOOD_SHA)
    with pytest.raises(UnsafePathError, match="not a regular file"):
        safefile.stage_copy(tmp_path / "pipe", GOOD_SHA, tmp_path)


def test_staging_folder_others_can_read_is_refused(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(GOOD)
    staging = tmp_path / "staging"
    staging.mkdir(mode=0o755)
    staging.chmod(0o755)
    with pytest.raises(UnsafePathError, match="must be ours and 0700"):
        safefile.stage_copy(tmp_path / "src", GOOD_SHA, staging)


def test_bad_paths_get_one_line_errors(tmp_path: Path) -> None:
    cases = {
        "relative/x": "not an absolute path",
        f"{tmp_path}/../x": "contains '..'",
        f"{tmp_path}/missing/x": "does not exist",
    }
    for path, why in cases.items():
        with pytest.raises(UnsafePathError, match=why) as info:
            safefile.open_dir(path)
        assert "\n" not in str(info.value)
        assert isinstance(info.value, RunError)
    (tmp_path / "folder").mkdir()
    with pytest.raises(UnsafePathError, match="is a folder; remove it"):
        safefile.place_file(b"x", tmp_path / "folder")
    safefile.place_file(b"x", tmp_path / "f")
    with pytest.raises(UnsafePathError, match="holds other bytes"):
        safefile.open_verified(tmp_path / "f", GOOD_SHA)


@needs_root
def test_staged_download_moves_to_a_planted_symlink_without_following_it(mac: Path) -> None:
    victim = _victim(mac)
    home = mac / "Users" / "attacker"
    attack(f"ln -s {victim} {home}/Dock.plist")
    staged = mac / "Library" / "bootstrapper" / "staging" / "item.part"
    staged.write_bytes(GOOD)
    safefile.place_staged(
        staged, home / "Dock.plist", owner=(ATTACKER, ATTACKER), mode=0o600, sha256=GOOD_SHA
    )
    assert victim.read_text() == "root ALL=(ALL) ALL\n"
    assert (victim.stat().st_uid, stat.S_IMODE(victim.stat().st_mode)) == (0, 0o440)
    info = (home / "Dock.plist").lstat()
    assert (stat.S_ISREG(info.st_mode), info.st_uid, stat.S_IMODE(info.st_mode)) == (True, ATTACKER, 0o600)
    assert not staged.exists()


def test_staged_download_is_copied_across_file_systems(tmp_path: Path) -> None:
    if not Path("/dev/shm").is_dir() or os.stat("/dev/shm").st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on another file system than the temporary folder")
    staging = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        staged = staging / "item.part"
        staged.write_bytes(GOOD)
        safefile.place_staged(staged, tmp_path / "Library" / "tool", mode=0o755, sha256=GOOD_SHA)
        assert (tmp_path / "Library" / "tool").read_bytes() == GOOD
        assert stat.S_IMODE((tmp_path / "Library" / "tool").stat().st_mode) == 0o755
        assert list(staging.iterdir()) == []
    finally:
        shutil.rmtree(staging)


def test_staged_file_outside_a_private_folder_is_refused(tmp_path: Path) -> None:
    open_folder = tmp_path / "open"
    open_folder.mkdir()
    open_folder.chmod(0o755)
    (open_folder / "item.part").write_bytes(GOOD)
    with pytest.raises(UnsafePathError, match="must be ours and 0700"):
        safefile.place_staged(open_folder / "item.part", tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_a_source_of_the_wrong_size_is_refused_before_copying(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    staging.mkdir(mode=0o700)
    (tmp_path / "big").write_bytes(GOOD * 1000)
    with pytest.raises(UnsafePathError, match=rf"is {len(GOOD) * 1000} bytes, expected {len(GOOD)}"):
        safefile.stage_copy(tmp_path / "big", GOOD_SHA, staging, size=len(GOOD))
    assert list(staging.iterdir()) == []
    (tmp_path / "ok").write_bytes(GOOD)
    assert safefile.stage_copy(tmp_path / "ok", GOOD_SHA, staging, size=len(GOOD)).read_bytes() == GOOD


def test_absolute_trusted_symlink_restarts_the_walk_from_the_root(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    fd = safefile.open_dir(tmp_path / "alias")
    try:
        assert os.fstat(fd).st_ino == (tmp_path / "real").stat().st_ino
    finally:
        os.close(fd)
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(UnsafePathError, match="too many symbolic links"):
        safefile.open_dir(tmp_path / "loop")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors through /proc")
def test_refusals_leak_no_descriptors(tmp_path: Path) -> None:
    (tmp_path / "open").mkdir()
    (tmp_path / "open").chmod(0o777)
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "f").write_bytes(b"x")
    (tmp_path / "dir").mkdir()
    before = len(os.listdir("/proc/self/fd"))
    for call in (
        lambda: safefile.open_dir(tmp_path / "loop"),
        lambda: safefile.place_file(b"x", tmp_path / "open" / "x"),
        lambda: safefile.place_file(b"x", tmp_path / "dir"),
        lambda: safefile.place_file(b"x", tmp_path / "g", sha256="0" * 64),
        lambda: safefile.open_verified(tmp_path / "f", GOOD_SHA),
        lambda: safefile.stage_copy(tmp_path / "f", GOOD_SHA, tmp_path / "open"),
        lambda: safefile.replace_command_file(tmp_path / "open" / "cmd"),
    ):
        with pytest.raises(UnsafePathError):
            call()
    assert len(os.listdir("/proc/self/fd")) == before


@needs_root
def test_local_manifest_the_user_can_rewrite_is_not_trusted(mac: Path) -> None:
    manifest = mac / "Shared" / "bootstrap.yaml"
    plant(b"format: 1\n", manifest)
    with pytest.raises(UnsafePathError, match="owned by uid 501"):
        safefile.open_trusted(manifest)
    own = mac / "Library" / "bootstrap.yaml"
    own.write_bytes(b"format: 1\n")
    own.chmod(0o664)
    with pytest.raises(UnsafePathError, match=r"mode 664\); chmod go-w"):
        safefile.open_trusted(own)
    own.chmod(0o644)
    fd = safefile.open_trusted(own)
    with os.fdopen(fd, "rb") as fh:
        assert fh.read() == b"format: 1\n"
