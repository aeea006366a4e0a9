"""Files root creates, reads or hands over, without acting on anything another user can change.

A check by path followed by an action by path is a race another local user can win: they swap a
folder for a symlink, a file for a hard link to `/etc/sudoers`, or their own package for the one we
hashed. So every path is walked from `/` one component at a time with directory descriptors
(`O_DIRECTORY|O_NOFOLLOW`), each folder is checked on its open descriptor, files are created
`O_CREAT|O_EXCL|O_NOFOLLOW` under a temporary name and renamed into place inside the same folder
descriptor, and owners, modes, link counts and hashes are read and set on the open file, never again
by path.

A folder root walks through must belong to root, to us (the sandbox runs as a normal user) or to the
owner the caller names, and be writable by nobody else — world-writable only with the sticky bit and a
root owner, like `/tmp` or `/Users/Shared`, where others can add names but not rename or remove ours.
A symlink is followed only when it belongs to root (or us) and sits in a folder only root (or we) can
write, so it cannot have been planted: that is macOS's `/var` → `private/var`. Any other is refused.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import stat
from collections.abc import Collection, Iterator
from pathlib import Path, PurePosixPath

from bootstrapper.errors import UnsafePathError

__all__ = [
    "Owners",
    "UnsafePathError",
    "open_dir",
    "open_trusted",
    "open_verified",
    "place_file",
    "place_staged",
    "replace_command_file",
    "stage_copy",
    "trusted_owners",
]

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC  # a planted FIFO must not hang us
_WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH
_CHUNK = 1 << 20
#: Trusted symlinks followed in one walk; more means a loop.
_MAX_HOPS = 16
#: Tries at a fresh temporary name; a collision means someone is guessing ours.
_TRIES = 8


#: Who else a caller trusts: one uid (the user a file is for), several (the agent trusts the daemon and
#: its user), or nobody.
Owners = int | Collection[int] | None


def trusted_owners(owner: Owners = None) -> frozenset[int]:
    """Whose folders and files root may rely on: root, ourselves, and the owner(s) the caller names."""
    named = set() if owner is None else {owner} if isinstance(owner, int) else set(owner)
    return frozenset({0, os.geteuid()} | named)


def open_dir(
    path: os.PathLike[str] | str,
    *,
    owner: Owners = None,
    create: bool = False,
    folder_owner: tuple[int, int] | None = None,
    folder_mode: int = 0o755,
) -> int:
    """A descriptor of the folder at the absolute `path`, every component on the way checked.

    `owner` also trusts that user's folders (a user file under their home). With `create`, missing
    folders are made one at a time with `mkdir(dir_fd=)`, given `folder_mode` and, if named,
    `folder_owner` (uid, gid) on their descriptor. The caller closes the descriptor.
    """
    shown = PurePosixPath(os.fspath(path))
    if not shown.is_absolute():
        raise UnsafePathError(shown, "not an absolute path; give the full path from /")
    if ".." in shown.parts:
        raise UnsafePathError(shown, "contains '..'; give the path without it")
    owners = trusted_owners(owner)
    todo = list(shown.parts[1:])
    walked = PurePosixPath("/")
    fd = _open_root()
    hops = 0
    try:
        while todo:
            name = todo.pop(0)
            if name in ("", "."):
                continue
            try:
                child = _open_child(fd, name, walked / name, create, folder_owner, folder_mode)
            except _SymlinkError:
                hops += 1
                if hops > _MAX_HOPS:
                    raise UnsafePathError(shown, "has too many symbolic links (a loop?)") from None
                target = _trusted_link(fd, name, walked / name)
                todo[:0] = list(target.parts[1:] if target.is_absolute() else target.parts)
                if target.is_absolute():
                    root = _open_root()
                    os.close(fd)
                    fd, walked = root, PurePosixPath("/")
                continue
            os.close(fd)
            fd, walked = child, walked / name
            _check_dir(fd, walked, owners)
    except BaseException:
        os.close(fd)
        raise
    return fd


def place_file(
    source: bytes | int,
    dest: os.PathLike[str] | str,
    *,
    owner: tuple[int, int] | None = None,
    mode: int = 0o644,
    sha256: str | None = None,
    create_folders: bool = True,
    folder_owner: tuple[int, int] | None = None,
    limit: int | None = None,
) -> str:
    """Put `source` (bytes, or a readable descriptor copied from its start) at `dest`; its sha256.

    The file is written under a fresh temporary name, given `owner` (uid, gid) and `mode` on its
    descriptor, and renamed over `dest` inside the checked folder, so whatever was at `dest` (a
    planted file or symlink) is replaced without being opened. With `sha256`, bytes that hash to
    anything else are never placed; with `limit`, at most that many bytes are copied from a
    descriptor (an endless source then fails the hash instead of filling the disk). Folders owned by
    `owner`'s uid are trusted on the way.
    """
    where = PurePosixPath(os.fspath(dest))
    name = _leaf(where)
    dfd = _dest_dir(where, owner, create_folders, folder_owner)
    try:
        fd, tmp = _new_file(dfd, name, where)
        try:
            try:
                digest = _write_all(fd, source, limit)
            except OSError as exc:
                raise UnsafePathError(where, f"cannot write it ({exc.strerror}); free some space") from exc
            _same_hash(where, digest, sha256, "the bytes changed while copying")
            _finish(fd, owner, mode, where)
            _rename(dfd, tmp, dfd, name, where)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            raise
        finally:
            os.close(fd)
        _sync(dfd)
    finally:
        os.close(dfd)
    return digest


def _dest_dir(
    where: PurePosixPath, owner: tuple[int, int] | None, create: bool, folder_owner: tuple[int, int] | None
) -> int:
    """The checked folder a file is placed in: folders owned by the new owner's uid are trusted."""
    return open_dir(
        where.parent, owner=owner[0] if owner is not None else None, create=create, folder_owner=folder_owner
    )


def open_trusted(path: os.PathLike[str] | str, *, owner: Owners = None) -> int:
    """A read-only descriptor of a file nobody else can have changed (a local manifest, a setting).

    The file must be a regular file with one link, owned by root, us or `owner`, writable by nobody
    else, in folders that pass `open_dir`. Read it through this descriptor; the caller closes it.
    """
    where = PurePosixPath(os.fspath(path))
    name = _leaf(where)
    dfd = open_dir(where.parent, owner=owner)
    try:
        fd = _open_file(dfd, name, where)
    finally:
        os.close(dfd)
    try:
        _check_file(fd, where, trusted_owners(owner))
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_verified(path: os.PathLike[str] | str, sha256: str, *, owner: Owners = None) -> int:
    """`open_trusted`, and the file has `sha256`, computed from this descriptor.

    Nothing swapped in by path after the check can change what the caller reads. The caller closes it.
    """
    fd = open_trusted(path, owner=owner)
    try:
        _same_hash(PurePosixPath(os.fspath(path)), _hash_fd(fd), sha256, "holds other bytes")
    except BaseException:
        os.close(fd)
        raise
    return fd


def stage_copy(
    path: os.PathLike[str] | str,
    sha256: str,
    staging_dir: os.PathLike[str] | str,
    *,
    mode: int = 0o600,
    size: int | None = None,
) -> Path:
    """A copy of `path` in our own 0700 `staging_dir`, with exactly the bytes `sha256` names.

    For a file outside root's folders (a package in /Users/Shared) that root is about to install
    or run: the copy is hashed from the bytes read off the source descriptor as they are written, so
    a swap before, during or after the copy never reaches the copy, which only root can change.
    The source may belong to anyone — its bytes are what is checked — but must be a regular file
    (a FIFO or device would hang or feed us endlessly); with the item's `size`, a file of another
    size is refused before copying, and one growing during the copy is cut at one byte past it.
    """
    where = PurePosixPath(os.fspath(path))
    name = _leaf(where)
    staging = PurePosixPath(os.fspath(staging_dir))
    dfd = _private_dir(staging)
    try:
        try:
            src = os.open(where, _READ_FLAGS)
        except OSError as exc:
            raise UnsafePathError(where, _open_failed(exc)) from exc
        try:
            _check_source(src, where, size)
            final = f"{sha256.lower()[:16]}-{name}"
            limit = None if size is None else size + 1
            place_file(src, staging / final, mode=mode, sha256=sha256, create_folders=False, limit=limit)
        finally:
            os.close(src)
    finally:
        os.close(dfd)
    return Path(staging / final)


def place_staged(
    staged: os.PathLike[str] | str,
    dest: os.PathLike[str] | str,
    *,
    owner: tuple[int, int] | None = None,
    mode: int = 0o644,
    sha256: str | None = None,
) -> None:
    """Move a verified download from our private staging folder to `dest`, never through a link.

    The staged file must be ours, unshared, in a 0700 folder of ours (with `sha256`, it is hashed
    again from its descriptor); it gets `owner` and `mode` on that descriptor while only we can reach
    it, then is renamed from folder descriptor to folder descriptor, replacing whatever was at
    `dest`, whose missing folders are created. Across file systems it is copied beside `dest` with
    `place_file` instead.
    """
    src = PurePosixPath(os.fspath(staged))
    name = _leaf(src)
    where = PurePosixPath(os.fspath(dest))
    dest_name = _leaf(where)
    sfd = _private_dir(src.parent)
    try:
        fd = _open_file(sfd, name, src)
        try:
            _check_file(fd, src, frozenset({os.geteuid()}))
            if sha256 is not None:
                _same_hash(src, _hash_fd(fd), sha256, "holds other bytes")
            _finish(fd, owner, mode, src)
            dfd = _dest_dir(where, owner, create=True, folder_owner=None)
            try:
                try:
                    _rename(sfd, name, dfd, dest_name, where)
                except _OtherFileSystemError:
                    place_file(fd, where, owner=owner, mode=mode, sha256=sha256, create_folders=False)
                    with contextlib.suppress(OSError):  # a leftover in staging is removed with it
                        os.unlink(name, dir_fd=sfd)
                _sync(dfd)
            finally:
                os.close(dfd)
        finally:
            os.close(fd)
    finally:
        os.close(sfd)


def replace_command_file(
    path: os.PathLike[str] | str, uid: int | None = None, mode: int = 0o644, *, gid: int = -1
) -> int:
    """A fresh, empty file at `path` for appending, owned by `uid` (default: us) with `mode`.

    For the command files GUI helpers read in world-writable `/var/tmp`: whatever is there (a stale
    file of another user, a symlink, a hard link to `/etc/sudoers`) is never opened — a new file is
    created under a temporary name and renamed over it, which replaces the name and leaves any
    link's target untouched. The caller owns the returned descriptor.
    """
    where = PurePosixPath(os.fspath(path))
    name = _leaf(where)
    dfd = open_dir(where.parent)
    try:
        fd, tmp = _new_file(dfd, name, where, append=True)
        try:
            _finish(fd, (os.geteuid() if uid is None else uid, gid), mode, where)
            _rename(dfd, tmp, dfd, name, where)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            os.close(fd)
            raise
    finally:
        os.close(dfd)
    return fd


# --- the walk ----------------------------------------------------------------------------------


class _SymlinkError(Exception):
    """The component is a symlink: the caller decides whether to follow it."""


def _open_root() -> int:
    fd = os.open("/", _DIR_FLAGS)
    try:
        _check_dir(fd, PurePosixPath("/"), trusted_owners())
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_child(
    fd: int,
    name: str,
    shown: PurePosixPath,
    create: bool,
    folder_owner: tuple[int, int] | None,
    folder_mode: int,
) -> int:
    made = False
    while True:
        try:
            child = os.open(name, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if not create or made:
                raise UnsafePathError(shown, "does not exist; create the folder first") from None
            try:
                os.mkdir(name, 0o700, dir_fd=fd)  # widened below, on the descriptor
                made = True
            except FileExistsError:
                pass  # someone made it meanwhile: it is checked like any other folder
            except OSError as exc:
                raise UnsafePathError(shown, f"cannot create the folder ({exc.strerror})") from exc
            continue
        except OSError as exc:
            if _is_symlink(fd, name):
                raise _SymlinkError from None
            raise UnsafePathError(shown, _open_failed(exc)) from exc
        break
    if made:
        try:
            _finish(child, folder_owner, folder_mode, shown)
        except BaseException:
            os.close(child)
            raise
    return child


def _is_symlink(fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _trusted_link(fd: int, name: str, shown: PurePosixPath) -> PurePosixPath:
    """The target of a symlink only root (or we) could have made, or a refusal."""
    base = trusted_owners()
    folder = os.fstat(fd)
    link = os.stat(name, dir_fd=fd, follow_symlinks=False)
    if link.st_uid not in base or folder.st_uid not in base or folder.st_mode & _WRITABLE_BY_OTHERS:
        raise UnsafePathError(
            shown, "is a symbolic link another user could have planted; use the real folder's path"
        )
    target = PurePosixPath(os.readlink(name, dir_fd=fd))
    if ".." in target.parts:
        raise UnsafePathError(shown, f"is a symbolic link to {target} (with '..'); use the real path")
    return target


def _check_dir(fd: int, shown: PurePosixPath, owners: frozenset[int]) -> None:
    info = os.fstat(fd)
    if info.st_uid not in owners:
        raise UnsafePathError(
            shown,
            f"is owned by uid {info.st_uid}, who could swap what root puts there; "
            "make it root's or use another folder",
        )
    sticky_root = info.st_uid == 0 and info.st_mode & stat.S_ISVTX
    if info.st_mode & _WRITABLE_BY_OTHERS and not sticky_root:
        raise UnsafePathError(
            shown,
            f"can be changed by other users (mode {stat.S_IMODE(info.st_mode):o}); "
            "chmod go-w it or use another folder",
        )


# --- files -------------------------------------------------------------------------------------


def _check_source(fd: int, where: PurePosixPath, size: int | None) -> None:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise UnsafePathError(where, "is not a regular file; remove it")
    if size is not None and info.st_size != size:
        raise UnsafePathError(where, f"is {info.st_size} bytes, expected {size}; not used")


def _check_file(fd: int, where: PurePosixPath, owners: frozenset[int]) -> None:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise UnsafePathError(where, "is not a regular file; remove it")
    if info.st_uid not in owners:
        raise UnsafePathError(
            where,
            f"is owned by uid {info.st_uid}, who could have changed it; not trusted "
            "(remove it or make it root's)",
        )
    if info.st_mode & _WRITABLE_BY_OTHERS:
        raise UnsafePathError(
            where, f"can be changed by other users (mode {stat.S_IMODE(info.st_mode):o}); chmod go-w it"
        )
    if info.st_nlink != 1:
        raise UnsafePathError(
            where, f"has {info.st_nlink} hard links, so another name can reach it; remove the others"
        )


def _same_hash(where: PurePosixPath, actual: str, expected: str | None, what: str) -> None:
    if expected is not None and actual != expected.lower():
        raise UnsafePathError(where, f"{what} (sha256 {actual}, expected {expected}); not used")


def _leaf(path: PurePosixPath) -> str:
    if path.name in ("", ".", "..") or not path.is_absolute():
        raise UnsafePathError(path, "is not an absolute path to a file; give the full path from /")
    return path.name


def _new_file(dfd: int, name: str, shown: PurePosixPath, *, append: bool = False) -> tuple[int, str]:
    flags = _NEW_FILE | (os.O_APPEND if append else 0)
    for _ in range(_TRIES):
        tmp = f".{name[:200]}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o600, dir_fd=dfd), tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise UnsafePathError(shown, f"cannot create a file beside it ({exc.strerror})") from exc
    raise UnsafePathError(shown, "every temporary name beside it was taken; someone is racing us")


def _finish(fd: int, owner: tuple[int, int] | None, mode: int, shown: PurePosixPath) -> None:
    """Owner first: a chown clears set-id bits, so the mode is set after it."""
    try:
        if owner is not None:
            os.fchown(fd, owner[0], owner[1])
        os.fchmod(fd, mode)
    except OSError as exc:
        who = f"uid {owner[0]}, " if owner is not None else ""
        raise UnsafePathError(
            shown, f"cannot set its owner and mode ({who}mode {mode:o}): {exc.strerror}; run as root"
        ) from exc


class _OtherFileSystemError(Exception):
    """A rename across file systems: the caller copies instead."""


def _rename(src_dfd: int, src: str, dst_dfd: int, name: str, shown: PurePosixPath) -> None:
    try:
        os.rename(src, name, src_dir_fd=src_dfd, dst_dir_fd=dst_dfd)
    except IsADirectoryError:
        raise UnsafePathError(shown, "is a folder; remove it") from None
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            raise _OtherFileSystemError from None
        raise UnsafePathError(shown, f"cannot be replaced ({exc.strerror})") from exc


def _private_dir(path: PurePosixPath) -> int:
    """Our staging folder: reached safely, ours, and closed to everyone else (0700)."""
    fd = open_dir(path)
    info = os.fstat(fd)
    if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o077:
        os.close(fd)
        raise UnsafePathError(
            path,
            f"is not a private staging folder (uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):o}); "
            "it must be ours and 0700",
        )
    return fd


def _open_file(dfd: int, name: str, shown: PurePosixPath) -> int:
    try:
        return os.open(name, _READ_FLAGS, dir_fd=dfd)
    except OSError as exc:
        raise UnsafePathError(shown, _open_failed(exc)) from exc


def _write_all(fd: int, source: bytes | int, limit: int | None = None) -> str:
    digest = hashlib.sha256()
    for block in [source] if isinstance(source, bytes) else _blocks(source, limit):
        digest.update(block)
        view = memoryview(block)
        while view:
            view = view[os.write(fd, view) :]
    os.fsync(fd)
    return digest.hexdigest()


def _blocks(fd: int, limit: int | None = None) -> Iterator[bytes]:
    """The descriptor's bytes from its start (pread: its offset may be anywhere), up to `limit`."""
    offset = 0
    while block := os.pread(fd, _CHUNK if limit is None else min(_CHUNK, limit - offset), offset):
        offset += len(block)
        yield block


def _hash_fd(fd: int) -> str:
    digest = hashlib.sha256()
    for block in _blocks(fd):
        digest.update(block)
    return digest.hexdigest()


def _open_failed(exc: OSError) -> str:
    if exc.errno in (errno.ELOOP, errno.EMLINK):
        return "is a symbolic link; refusing to follow it"
    if exc.errno == errno.ENOENT:
        return "does not exist"
    if exc.errno == errno.ENOTDIR:
        return "is not a folder"
    return f"cannot be opened ({exc.strerror})"


def _sync(dfd: int) -> None:
    """Make the rename durable; some file systems refuse to fsync a folder, which is not fatal."""
    with contextlib.suppress(OSError):
        os.fsync(dfd)
