"""Safe extraction of a cpio payload under a root folder.

The rules, each one an attack that a hostile package could try:
- no entry lands outside the root: absolute names, `..`, and writing *through* a symlink are refused;
  a relative symlink whose target climbs out of the root is refused. (Absolute symlink targets are
  kept as they are: on the Mac they point inside the volume, `/Applications/…`, and extraction
  never follows a symlink out of the root, so they cannot be used to write elsewhere.)
- only regular files, folders and symlinks: device nodes, FIFOs and sockets are refused;
- setuid and setgid bits are stripped (and reported);
- files are written to a fresh temporary name in their folder (O_EXCL | O_NOFOLLOW) and renamed
  into place, so an existing symlink at the destination is replaced, never written through;
- a later entry of the same name replaces an earlier one, as cpio does, and cancels what the earlier
  one promised (a hard link still waiting for its data, a symlink this extraction made);
- AppleDouble `._name` members are skipped: `installer` applies them as metadata, not as files;
- a file-system error caused by an entry (a name too long, a file where a folder is) is that
  entry's PackageError, like every refusal above.

`scan` runs the name and type checks without writing anything; `extract` checks again as it writes.
Installing runs `scan` first so that a hostile entry at the end of a payload is refused before the
first file is written.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from bootstrapper.flatpkg.cpio import MAX_LINK, CpioEntry, CpioReader, Problem

MAX_COMPONENT = 255
#: Real payloads nest a few dozen folders deep; past this, tools that walk the tree recursively
#: (`shutil.rmtree` among them) fail on what was installed, so the entry is refused.
MAX_PARTS = 256
_KINDS = {stat.S_IFREG: "file", stat.S_IFDIR: "directory", stat.S_IFLNK: "symlink"}
_REFUSED = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
}


@dataclass(frozen=True)
class ExtractResult:
    files: int = 0
    directories: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    bytes: int = 0
    #: Entries whose setuid/setgid bits were removed.
    stripped: tuple[str, ...] = ()
    #: AppleDouble `._name` members, which `installer` applies as metadata rather than files.
    skipped: int = 0
    paths: tuple[str, ...] = field(default=(), repr=False)


def outside_root(name: str) -> bool:
    """Does a payload entry name leave the install root (absolute, or a `..` component)?"""
    return name.startswith("/") or ".." in name.split("/")


def is_appledouble(parts: tuple[str, ...]) -> bool:
    """Is this a `._name` AppleDouble member (the resource fork and attributes of `name`)?"""
    return bool(parts) and parts[-1].startswith("._")


def entry_parts(entry: CpioEntry, problem: Problem) -> tuple[str, ...]:
    """The entry's path as safe components (`()` for the root itself), or a refusal."""
    name = entry.name
    if "\0" in name:
        raise problem(f"entry {name!r} has a NUL in its name")
    if name.startswith("/"):
        raise problem(f"entry {name!r} has an absolute path (path traversal refused)")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise problem(f"entry {name!r} contains '..' (path traversal refused)")
    if len(parts) > MAX_PARTS:
        raise problem(f"entry {name[:60]!r}… nests {len(parts)} folders deep; the limit is {MAX_PARTS}")
    for part in parts:
        if len(part.encode("utf-8")) > MAX_COMPONENT:
            raise problem(f"entry {name!r} has a name component over {MAX_COMPONENT} bytes")
    kind = entry.file_type
    if kind in _REFUSED:
        raise problem(f"entry {name!r} is {_REFUSED[kind]}; device files and special files are refused")
    if kind not in _KINDS:
        raise problem(f"entry {name!r} has an unknown file type {oct(kind)}")
    return parts


def check_link(parts: tuple[str, ...], target: str, base: tuple[str, ...], problem: Problem) -> None:
    """Refuse a relative symlink whose target, seen from inside the root, climbs out of it."""
    where = "/".join(parts)
    if not target or "\0" in target:
        raise problem(f"symlink {where!r} has an empty or NUL-containing target")
    if target.startswith("/"):
        return
    depth = list(base + parts[:-1])
    for comp in PurePosixPath(target).parts:
        if comp == "..":
            if not depth:
                raise problem(f"symlink {where!r} -> {target!r} points outside the install root")
            depth.pop()
        elif comp != ".":
            depth.append(comp)


def scan(reader: CpioReader, base: tuple[str, ...] = ()) -> tuple[int, int]:
    """Check every entry without writing; returns (entries, data bytes)."""
    problem = reader.problem
    links: set[tuple[str, ...]] = set()
    count = size = 0
    for entry in reader:
        parts = entry_parts(entry, problem)
        folders = len(parts) if entry.file_type == stat.S_IFDIR else len(parts) - 1
        for i in range(1, folders + 1):
            if parts[:i] in links:
                raise problem(
                    f"entry {entry.name!r} would be written through the symlink {'/'.join(parts[:i])!r}"
                )
        if entry.file_type == stat.S_IFLNK:
            target = _link_target(reader, problem, entry)
            check_link(parts, target, base, problem)
            links.add(parts)
        else:
            links.discard(parts)  # a later entry of the same name replaces the symlink
        count += 1
        size += entry.size
    return count, size


def _link_target(reader: CpioReader, problem: Problem, entry: CpioEntry) -> str:
    raw = reader.read_data(MAX_LINK)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise problem(f"symlink {entry.name!r} has a target that is not UTF-8") from None


class _Extractor:
    def __init__(self, root: Path, base: tuple[str, ...], problem: Problem) -> None:
        self.root = root
        self.real_root = Path(os.path.realpath(root))
        self.base = base
        self.problem = problem
        self._dirs: dict[tuple[str, ...], Path] = {(): self.real_root}
        self._dir_modes: list[tuple[Path, int, int]] = []
        #: Symlinks this extraction made (full parts): never written through, never used as folders.
        self._made_links: set[tuple[str, ...]] = set()
        #: (dev, ino) of a hard-linked file → where its data was written and the inode it got there.
        self._links: dict[tuple[int, int], tuple[Path, int]] = {}
        self._link_at: dict[Path, tuple[int, int]] = {}
        #: Hard links met before the entry that carries their data, and the reverse index.
        self._pending: dict[tuple[int, int], list[Path]] = {}
        self._pending_at: dict[Path, tuple[int, int]] = {}
        self._tmp_count = 0
        self.stripped: list[str] = []
        self.counts = {"file": 0, "directory": 0, "symlink": 0, "hardlink": 0}
        self.bytes = 0
        self.skipped = 0
        self.paths: list[str] = []

    def _inside(self, path: Path) -> bool:
        return path == self.real_root or self.real_root in path.parents

    def folder(self, parts: tuple[str, ...]) -> Path:
        """The real folder for `parts` under the root, created if missing, never outside the root.

        A loop rather than recursion, so a deep name costs no stack. A symlink
        this extraction made is never entered; one that was already there (`/etc` → `private/etc`
        on a Mac volume) is followed only when it resolves to a folder inside the root.
        """
        known = len(parts)
        while parts[:known] not in self._dirs:
            known -= 1
        cur = self._dirs[parts[:known]]
        for end in range(known + 1, len(parts) + 1):
            sub = parts[:end]
            where = "/".join(sub)
            if sub in self._made_links:
                raise self.problem(f"an entry would be written through the symlink {where!r}")
            p = cur / sub[-1]
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                os.mkdir(p, 0o755)
                st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                real = Path(os.path.realpath(p))
                if not self._inside(real):
                    raise self.problem(f"{where!r} is a symlink that leads outside the install root")
                if not real.is_dir():
                    raise self.problem(f"{where!r} is a symlink to something that is not a folder")
                p = real
            elif not stat.S_ISDIR(st.st_mode):
                raise self.problem(f"{where!r} exists and is not a folder")
            self._dirs[sub] = cur = p
        return cur

    def mode(self, entry: CpioEntry) -> int:
        mode = stat.S_IMODE(entry.mode)
        if mode & (stat.S_ISUID | stat.S_ISGID):
            self.stripped.append(entry.name)
            mode &= ~(stat.S_ISUID | stat.S_ISGID)
        return mode

    def entry(self, reader: CpioReader, entry: CpioEntry, on_bytes: Callable[[int], None] | None) -> None:
        parts = entry_parts(entry, self.problem)
        full = self.base + parts
        kind = entry.file_type
        if kind != stat.S_IFDIR and is_appledouble(parts):
            # `installer` applies `._name` as the extended attributes of `name`, it never writes it.
            self.skipped += 1
            return
        if kind == stat.S_IFDIR:
            path = self.folder(full)
            if parts:
                self._dir_modes.append((path, self.mode(entry), entry.mtime))
                self.counts["directory"] += 1
            return
        if not parts:
            raise self.problem(f"entry {entry.name!r} would replace the install root itself")
        parent = self.folder(full[:-1])
        dest = parent / full[-1]
        # A later entry of the same name replaces an earlier one, as cpio does: forget what the
        # earlier one promised (a pending hard link, a link source, a symlink we made).
        self._claim(full, dest)
        self.paths.append("/".join(parts))
        if kind == stat.S_IFLNK:
            target = _link_target(reader, self.problem, entry)
            check_link(parts, target, self.base, self.problem)
            tmp = self._tmp(dest)
            os.symlink(target, tmp)
            self._place(tmp, dest)
            if full in self._dirs:  # it replaced a planted symlink to a folder: forget what lay behind
                self._dirs = {k: v for k, v in self._dirs.items() if k[: len(full)] != full}
            self._made_links.add(full)
            self.counts["symlink"] += 1
            return
        key = (entry.dev, entry.ino)
        if entry.nlink > 1 and entry.size == 0:
            if key in self._links:
                self._hardlink(self._links[key], dest)
            else:
                self._pending.setdefault(key, []).append(dest)
                self._pending_at[dest] = key
            return
        ino = self._write(reader, entry, dest, on_bytes)
        if entry.nlink > 1:
            if key in self._links:
                self._link_at.pop(self._links[key][0], None)
            self._links[key] = (dest, ino)
            self._link_at[dest] = key
            for other in self._pending.pop(key, []):
                del self._pending_at[other]
                self._hardlink((dest, ino), other)

    def _claim(self, full: tuple[str, ...], dest: Path) -> None:
        self._made_links.discard(full)
        key = self._pending_at.pop(dest, None)
        if key is not None:
            self._pending[key].remove(dest)
        key = self._link_at.pop(dest, None)
        if key is not None:
            del self._links[key]

    def _hardlink(self, src: tuple[Path, int], dest: Path) -> None:
        path, ino = src
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_ino != ino:
            raise self.problem(
                f"the hard link {dest} names {path}, which is no longer the file written there"
            )
        tmp = self._tmp(dest)
        os.link(path, tmp, follow_symlinks=False)
        self._place(tmp, dest)
        self.counts["hardlink"] += 1

    def _tmp(self, dest: Path) -> Path:
        """A fresh temporary name beside `dest` (short, so a 255-byte name still has room)."""
        self._tmp_count += 1
        tmp = dest.with_name(f".bootstrapper-{os.getpid()}-{self._tmp_count}.tmp")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        return tmp

    def _place(self, tmp: Path, dest: Path) -> None:
        try:
            os.replace(tmp, dest)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise self.problem(f"cannot place {dest}: {exc.strerror or exc}") from None

    def _write(
        self,
        reader: CpioReader | None,
        entry: CpioEntry | None,
        dest: Path,
        on_bytes: Callable[[int], None] | None,
    ) -> int:
        """Write the entry's data (nothing without a reader) to a new file and rename it to `dest`.

        The file is created with O_EXCL | O_NOFOLLOW under a fresh name, so no symlink, planted or
        made, is ever written through. Returns the inode, which hard links to it check.
        """
        tmp = self._tmp(dest)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb", closefd=True) as fh:
                if reader is not None:
                    for chunk in reader.chunks():
                        fh.write(chunk)
                        self.bytes += len(chunk)
                        if on_bytes is not None:
                            on_bytes(self.bytes)
                os.fchmod(fh.fileno(), self.mode(entry) if entry is not None else 0o644)
                ino = os.fstat(fh.fileno()).st_ino
            if entry is not None:
                os.utime(tmp, (entry.mtime, entry.mtime), follow_symlinks=False)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._place(tmp, dest)
        self.counts["file"] += 1
        return ino

    def finish(self) -> ExtractResult:
        # Hard links whose data never came: installer leaves them as empty files.
        for dests in self._pending.values():
            for dest in dests:
                self._write(None, None, dest, None)
        for path, mode, mtime in reversed(self._dir_modes):
            # Without root, a 0555 folder would lock the sandbox's owner out of the next install.
            os.chmod(path, mode if os.geteuid() == 0 else mode | stat.S_IRWXU)
            os.utime(path, (mtime, mtime))
        return ExtractResult(
            files=self.counts["file"],
            directories=self.counts["directory"],
            symlinks=self.counts["symlink"],
            hardlinks=self.counts["hardlink"],
            bytes=self.bytes,
            stripped=tuple(self.stripped),
            skipped=self.skipped,
            paths=tuple(self.paths),
        )


def extract(
    reader: CpioReader,
    root: Path,
    *,
    location: str = "/",
    on_bytes: Callable[[int], None] | None = None,
) -> ExtractResult:
    """Extract every entry under `root`/`location`; symlink checks treat `root` as the volume.

    A file-system error caused by an entry (a name too long for the disk, a file where a folder
    must go) is that entry's PackageError, like every other refusal.
    """
    problem = reader.problem
    base = location_parts(location, problem)
    name = location
    try:
        root.mkdir(parents=True, exist_ok=True)
        ex = _Extractor(root, base, problem)
        ex.folder(base)
        for entry in reader:
            name = entry.name
            ex.entry(reader, entry, on_bytes)
        name = "(finishing)"
        return ex.finish()
    except OSError as exc:
        raise problem(f"cannot extract {name!r}: {exc.strerror or exc}") from None


def location_parts(location: str, problem: Problem) -> tuple[str, ...]:
    """An install location as safe components: absolute, no `..`."""
    if not location.startswith("/"):
        raise problem(f"install-location {location!r} is not an absolute path")
    parts = tuple(p for p in location.split("/") if p not in ("", "."))
    if ".." in parts or any("\0" in p for p in parts):
        raise problem(f"install-location {location!r} contains '..' (path traversal refused)")
    return parts
