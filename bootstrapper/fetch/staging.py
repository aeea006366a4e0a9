"""Files on disk: the root-only staging folder, `.part` files with their resume sidecar, and placing.

A download is written to `<staging>/<name>.part` (0600, never through a symlink), hashed as it is
written, fsynced, and only after verification moved over the destination by `safefile.place_staged`,
so a symlink planted at the destination is replaced, never followed, no folder another user controls
is written into, and partial work is never taken for a finished file.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bootstrapper.errors import StagingError, UnsafePathError
from bootstrapper.fetch.model import MiB
from bootstrapper.safefile import open_dir

#: The part file's writer: `os.write` in production; a test may inject one that fails like a full disk.
Writer = Callable[[int, memoryview], int]

#: Bytes gathered from the network before they are handed to the I/O thread in one go.
BATCH = 1 * MiB
_SIDECAR_MAX = 64 * 1024
_NOSPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
_IO = ThreadPoolExecutor(max_workers=8, thread_name_prefix="bootstrapper-fetch-io")


def is_disk_full(exc: OSError) -> bool:
    return exc.errno in _NOSPACE


def prepare_staging(path: Path) -> Path:
    """Create the staging folder 0700; refuse one that is a symlink, not a folder, or not ours.

    The folders above it are walked with `safefile.open_dir` (none another user owns or planted a
    link in), and the folder itself is opened without following a link and checked and fixed on
    that descriptor, so a folder swapped in by path is never the one chmodded.
    """
    path = path.absolute()
    try:
        parent = open_dir(path.parent, create=True)
    except UnsafePathError as exc:
        raise StagingError(f"staging folder {path}: {exc}") from exc
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path.name, 0o700, dir_fd=parent)
        fd = os.open(path.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            what = "a symlink" if path.is_symlink() else "not a folder"
            raise StagingError(f"staging folder {path} is {what}; remove it, it is not ours") from None
        raise StagingError(f"staging folder {path}: {exc.strerror or exc}; check the install prefix") from exc
    finally:
        os.close(parent)
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            raise StagingError(f"staging folder {path} is owned by uid {st.st_uid}, not us; remove it")
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    return path


@dataclass(frozen=True)
class Part:
    """A download in progress and the sidecar that makes it resumable."""

    path: Path
    sidecar: Path

    @classmethod
    def for_item(cls, staging: Path, url: str, sha256: str) -> Part:
        # named after URL and hash: a restarted run finds its own part, and no other item's
        name = hashlib.sha256(f"{url}\n{sha256}".encode()).hexdigest()[:32]
        return cls(staging / f"{name}.part", staging / f"{name}.part.json")

    def discard(self) -> None:
        for p in (self.path, self.sidecar):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def size(self) -> int:
        """Bytes already in a regular part file; 0 (after removing it) for anything else."""
        try:
            st = self.path.lstat()
        except FileNotFoundError:
            return 0
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            self.discard()
            return 0
        return st.st_size

    def read_sidecar(self) -> dict[str, str]:
        try:
            fd = os.open(self.sidecar, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return {}
        try:
            with os.fdopen(fd, "rb") as fh:
                data = json.loads(fh.read(_SIDECAR_MAX))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): str(v) for k, v in data.items() if isinstance(v, str)}

    def write_sidecar(self, data: dict[str, str]) -> None:
        tmp = self.sidecar.with_suffix(".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, self.sidecar)

    def open(self, *, append: bool) -> int:
        """The part's descriptor, for appending or from zero; never through a symlink."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        flags |= os.O_APPEND if append else os.O_TRUNC
        fd = os.open(self.path, flags, 0o600)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise StagingError(f"{self.path} is not a regular file; remove it")
        return fd


class Sink:
    """Hashes and writes a body on an I/O thread while the event loop receives the next batch.

    At most one batch is in flight, so memory stays at about two batches per download, and hashing
    (which releases the GIL) overlaps with the network instead of following it.
    """

    def __init__(self, fd: int, hasher: hashlib._Hash, write: Writer) -> None:
        self._fd = fd
        self._hasher = hasher
        self._write = write
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._pending: Future[None] | None = None

    async def feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        if self._buffered >= BATCH:
            await self._flush()

    async def _flush(self) -> None:
        if self._pending is not None:
            # kept until done: `close` must not close the descriptor under a running write
            await asyncio.wrap_future(self._pending)
            self._pending = None
        if self._chunks:
            data = b"".join(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
            self._chunks.clear()
            self._buffered = 0
            self._pending = _IO.submit(self._consume, data)

    def _consume(self, data: bytes) -> None:
        self._hasher.update(data)
        view = memoryview(data)
        while view:
            view = view[self._write(self._fd, view) :]

    async def finish(self, mode: int) -> str:
        """Write what is left, set the mode, fsync; the sha256 of everything written."""
        await self._flush()
        await self._flush()
        await asyncio.wrap_future(_IO.submit(self._sync, mode))
        return self._hasher.hexdigest()

    def _sync(self, mode: int) -> None:
        os.fchmod(self._fd, mode)
        os.fsync(self._fd)

    def close(self) -> None:
        """Keep what arrived (the next attempt resumes after it), then close the file.

        Waits for a write still running on the I/O thread (also after a cancellation) so the
        descriptor is never closed under it; after a failed write nothing more is appended, since a
        gap would corrupt the part. The hash is not needed: a resume re-reads the part from disk.
        """
        intact = True
        if self._pending is not None:
            try:
                self._pending.result()
            except BaseException:
                intact = False
            self._pending = None
        try:
            if intact and self._chunks:
                with contextlib.suppress(OSError):
                    for chunk in self._chunks:
                        view = memoryview(chunk)
                        while view:
                            view = view[self._write(self._fd, view) :]
            self._chunks.clear()
        finally:
            os.close(self._fd)


def free_space(path: Path) -> int:
    """Free bytes on the filesystem holding `path`, or its nearest existing parent."""
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except FileNotFoundError:
            continue
    return 0
