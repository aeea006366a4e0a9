"""Write real flat packages: component packages and product archives, in pure Python.

The end-to-end tests and the benchmarks make `.pkg` files on the fly with these, and the reader
must read them back. Test tooling, kept out of the runtime wheel: nothing on a Mac writes a package. The output follows what Apple's `pkgbuild`/`productbuild` write: a xar with a zlib
TOC and a SHA-1 TOC checksum at heap offset 0, PackageInfo zlib-encoded, Payload and Scripts stored
and themselves gzip-compressed odc cpio (or pbzx, as `pkgbuild --compression latest` makes).
No Bom is written: the sandbox does not need one; for a package that real `installer` must accept,
build with `pkgbuild`.

Payloads stream through temporary files next to the destination, so building from a folder of
several GB does not need that much memory. Output is deterministic for equal inputs when
`created` is given (gzip headers carry no time).
"""

from __future__ import annotations

import bz2
import contextlib
import datetime as dt
import gzip
import hashlib
import lzma
import os
import shutil
import stat
import struct
import tempfile
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Literal

from bootstrapper import __version__
from bootstrapper.flatpkg import cpio
from bootstrapper.flatpkg.info import SCRIPT_PHASES
from bootstrapper.flatpkg.xar import HEADER, MAGIC

#: Apple's pkgbuild writes 16 MiB pbzx chunks.
PBZX_CHUNK = 16 * 1024 * 1024
_COPY = 1024 * 1024
Encoding = Literal["stored", "zlib", "bzip2"]
_STYLES = {"stored": "application/octet-stream", "zlib": "application/x-gzip", "bzip2": "application/x-bzip2"}


@dataclass(frozen=True)
class PayloadFile:
    """A payload entry with an explicit mode, or a symlink when `symlink` is set."""

    data: bytes = b""
    mode: int = 0o644
    symlink: str | None = None


@dataclass(frozen=True)
class CpioItem:
    """One raw cpio entry. No checks: tests use this to build hostile archives on purpose."""

    name: str
    mode: int
    data: bytes | Path = b""
    mtime: int = 0
    nlink: int = 1
    ino: int | None = None


@dataclass(frozen=True)
class XarSource:
    """One xar member: its path inside the archive, its content, and how to encode it."""

    path: str
    data: bytes | Path
    encoding: Encoding = "stored"


# --- cpio and pbzx -------------------------------------------------------------------------------


def write_cpio(out: IO[bytes], items: Iterable[CpioItem], fmt: Literal["odc", "newc"] = "odc") -> int:
    """Write a cpio archive with a trailer; returns the number of entries (without the trailer)."""
    count = 0
    for count, item in enumerate(items, start=1):
        size = item.data.stat().st_size if isinstance(item.data, Path) else len(item.data)
        ino = item.ino if item.ino is not None else count
        out.write(_header(fmt, item.name, item.mode, size, ino, item.nlink, item.mtime))
        if isinstance(item.data, Path):
            with open(item.data, "rb") as fh:
                shutil.copyfileobj(fh, out, _COPY)
        else:
            out.write(item.data)
        if fmt == "newc":
            out.write(b"\0" * ((-size) % 4))
    out.write(_header(fmt, cpio.TRAILER, 0, 0, 0, 1, 0))
    return count


def _header(fmt: str, name: str, mode: int, size: int, ino: int, nlink: int, mtime: int) -> bytes:
    if fmt == "odc":
        return cpio.odc_header(name, mode=mode, size=size, ino=ino, nlink=nlink, mtime=mtime)
    raw = name.encode("utf-8") + b"\0"
    fields = (ino, mode, 0, 0, nlink, mtime, size, 0, 0, 0, 0, len(raw), 0)
    head = cpio.NEWC + b"".join(b"%08x" % f for f in fields) + raw
    return head + b"\0" * ((-len(head)) % 4)


def write_pbzx(src: IO[bytes], out: IO[bytes], chunk_size: int = PBZX_CHUNK) -> int:
    """Compress `src` into pbzx: one xz stream per chunk, stored when xz does not help."""
    out.write(cpio.PBZX + struct.pack(">Q", chunk_size))
    chunks = 0
    while chunk := src.read(chunk_size):
        packed = lzma.compress(chunk, format=lzma.FORMAT_XZ, preset=1)
        if len(packed) >= len(chunk):
            packed = chunk
        out.write(struct.pack(">QQ", len(chunk), len(packed)))
        out.write(packed)
        chunks += 1
    return chunks


# --- xar -----------------------------------------------------------------------------------------


@dataclass
class _Spooled:
    path: str
    file: IO[bytes]
    encoding: Encoding
    length: int
    size: int
    archived: str
    extracted: str


def _spool(src: XarSource, workdir: Path) -> _Spooled:
    tmp = tempfile.TemporaryFile(dir=workdir)  # noqa: SIM115 (closed by write_xar)
    ahash, xhash = hashlib.sha1(), hashlib.sha1()  # noqa: S324 (xar's format, not a security choice)
    enc: zlib._Compress | bz2.BZ2Compressor | None = None
    if src.encoding == "zlib":
        enc = zlib.compressobj(9)
    elif src.encoding == "bzip2":
        enc = bz2.BZ2Compressor(9)
    size = length = 0

    def emit(data: bytes) -> None:
        nonlocal length
        if data:
            tmp.write(data)
            ahash.update(data)
            length += len(data)

    for chunk in _chunks(src.data):
        size += len(chunk)
        xhash.update(chunk)
        emit(enc.compress(chunk) if enc is not None else chunk)
    if enc is not None:
        emit(enc.flush())
    tmp.seek(0)
    return _Spooled(src.path, tmp, src.encoding, length, size, ahash.hexdigest(), xhash.hexdigest())


def _chunks(data: bytes | Path) -> Iterator[bytes]:
    if isinstance(data, bytes):
        yield data
        return
    with open(data, "rb") as fh:
        while chunk := fh.read(_COPY):
            yield chunk


def write_xar(dest: Path, members: Sequence[XarSource], *, created: dt.datetime | None = None) -> Path:
    """Write a xar archive: zlib TOC, SHA-1 TOC checksum at heap 0, members in the given order."""
    dest = Path(dest)
    workdir = dest.parent
    spooled = [_spool(m, workdir) for m in members]
    try:
        toc = _toc(spooled, created or dt.datetime.now(dt.UTC))
        packed = zlib.compress(toc, 9)
        checksum = hashlib.sha1(packed).digest()  # noqa: S324 (the format's checksum)
        tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as out:
                out.write(HEADER.pack(MAGIC, HEADER.size, 1, len(packed), len(toc), 1))
                out.write(packed)
                out.write(checksum)
                for s in spooled:
                    shutil.copyfileobj(s.file, out, _COPY)
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    finally:
        for s in spooled:
            s.file.close()
    return dest


def _toc(spooled: Sequence[_Spooled], created: dt.datetime) -> bytes:
    root = ET.Element("xar")
    toc = ET.SubElement(root, "toc")
    ET.SubElement(toc, "creation-time").text = created.strftime("%Y-%m-%dT%H:%M:%S")
    ck = ET.SubElement(toc, "checksum", style="sha1")
    ET.SubElement(ck, "offset").text = "0"
    ET.SubElement(ck, "size").text = "20"
    dirs: dict[str, ET.Element] = {"": toc}
    ids = iter(range(1, 1 << 30))
    offset = 20
    for s in spooled:
        parts = PurePosixPath(s.path).parts
        for i in range(1, len(parts)):
            key = "/".join(parts[:i])
            if key not in dirs:
                d = ET.SubElement(dirs["/".join(parts[: i - 1])], "file", id=str(next(ids)))
                ET.SubElement(d, "name").text = parts[i - 1]
                ET.SubElement(d, "type").text = "directory"
                ET.SubElement(d, "mode").text = "0755"
                dirs[key] = d
        f = ET.SubElement(dirs["/".join(parts[:-1])], "file", id=str(next(ids)))
        data = ET.SubElement(f, "data")
        ET.SubElement(data, "length").text = str(s.length)
        ET.SubElement(data, "offset").text = str(offset)
        ET.SubElement(data, "size").text = str(s.size)
        ET.SubElement(data, "encoding", style=_STYLES[s.encoding])
        ET.SubElement(data, "extracted-checksum", style="sha1").text = s.extracted
        ET.SubElement(data, "archived-checksum", style="sha1").text = s.archived
        ET.SubElement(f, "mode").text = "0644"
        ET.SubElement(f, "type").text = "file"
        ET.SubElement(f, "name").text = parts[-1]
        offset += s.length
    ET.indent(root, " ")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + _tostring(root)


def _tostring(root: ET.Element) -> bytes:
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return data


# --- packages ------------------------------------------------------------------------------------


def payload_items(files: Mapping[str, bytes | PayloadFile], mtime: int = 0) -> list[CpioItem]:
    """cpio entries for a mapping of relative paths, with `.` and every parent folder, like pkgbuild."""
    items: dict[str, CpioItem] = {".": CpioItem(".", stat.S_IFDIR | 0o755, mtime=mtime)}
    for rel in sorted(files):
        parts = _relative(rel)
        for i in range(1, len(parts)):
            name = "./" + "/".join(parts[:i])
            items.setdefault(name, CpioItem(name, stat.S_IFDIR | 0o755, mtime=mtime))
        spec = files[rel]
        name = "./" + "/".join(parts)
        if isinstance(spec, bytes):
            items[name] = CpioItem(name, stat.S_IFREG | 0o644, spec, mtime)
        elif spec.symlink is not None:
            items[name] = CpioItem(name, stat.S_IFLNK | 0o755, spec.symlink.encode("utf-8"), mtime)
        else:
            items[name] = CpioItem(name, stat.S_IFREG | (spec.mode & 0o7777), spec.data, mtime)
    return list(items.values())


def tree_items(root: Path) -> list[CpioItem]:
    """cpio entries for everything under a folder (files are streamed from disk when written)."""
    st = root.stat()
    items = [CpioItem(".", stat.S_IFDIR | stat.S_IMODE(st.st_mode), mtime=int(st.st_mtime))]
    for folder, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(folder)
        for name in [*dirnames, *sorted(filenames)]:
            path = base / name
            st = path.lstat()
            rel = "./" + path.relative_to(root).as_posix()
            if stat.S_ISLNK(st.st_mode):
                items.append(CpioItem(rel, st.st_mode, os.readlink(path).encode("utf-8"), int(st.st_mtime)))
            elif stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
                data: bytes | Path = path if stat.S_ISREG(st.st_mode) else b""
                items.append(CpioItem(rel, st.st_mode, data, int(st.st_mtime)))
    return items


def _relative(rel: str) -> tuple[str, ...]:
    parts = tuple(p for p in rel.split("/") if p not in ("", "."))
    if rel.startswith("/") or ".." in parts or not parts:
        raise ValueError(f"payload path {rel!r} must be relative, without '..'")
    return parts


def _archive(items: Sequence[CpioItem], workdir: Path, compression: str, chunk_size: int) -> Path:
    """Write the cpio stream of `items`, compressed, to a temporary file; the caller removes it."""
    fd, raw_name = tempfile.mkstemp(dir=workdir, suffix=".cpio")
    raw = Path(raw_name)
    with os.fdopen(fd, "wb") as fh:
        write_cpio(fh, items)
    fd, out_name = tempfile.mkstemp(dir=workdir, suffix=f".{compression}")
    try:
        with os.fdopen(fd, "wb") as out, open(raw, "rb") as src:
            if compression == "pbzx":
                write_pbzx(src, out, chunk_size)
            elif compression == "gzip":
                with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as gz:
                    shutil.copyfileobj(src, gz, _COPY)
            else:
                raise ValueError(f"compression must be 'gzip' or 'pbzx', got {compression!r}")
    finally:
        raw.unlink()
    return Path(out_name)


def package_info_xml(
    identifier: str,
    version: str,
    *,
    install_location: str = "/",
    number_of_files: int = 0,
    install_kbytes: int = 0,
    scripts: Iterable[str] = (),
    postinstall_action: str = "none",
    auth: str = "root",
) -> bytes:
    root = ET.Element(
        "pkg-info",
        {
            "format-version": "2",
            "identifier": identifier,
            "version": version,
            "install-location": install_location,
            "auth": auth,
            "postinstall-action": postinstall_action,
            "generator-version": f"bootstrapper-{__version__}",
        },
    )
    ET.SubElement(root, "payload", numberOfFiles=str(number_of_files), installKBytes=str(install_kbytes))
    phases = [p for p in SCRIPT_PHASES if p in set(scripts)]
    if phases:
        node = ET.SubElement(root, "scripts")
        for phase in phases:
            ET.SubElement(node, phase, file=f"./{phase}")
    ET.SubElement(root, "bundle-version")
    ET.indent(root, "    ")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + _tostring(root)


def build_component_pkg(
    dest: Path,
    identifier: str,
    version: str,
    files: Mapping[str, bytes | PayloadFile] | None = None,
    *,
    payload_root: Path | None = None,
    install_location: str = "/",
    scripts: Mapping[str, str] | None = None,
    compression: Literal["gzip", "pbzx"] = "gzip",
    postinstall_action: str = "none",
    auth: str = "root",
    pbzx_chunk_size: int = PBZX_CHUNK,
    created: dt.datetime | None = None,
) -> Path:
    """Build a component package, like `pkgbuild --identifier … --version … --root …`.

    Give the payload as `files` (relative path → bytes or `PayloadFile`) or as `payload_root`
    (a folder, streamed). `scripts` maps script names (`preinstall`, `postinstall`, helpers) to
    their text; they are made executable.
    """
    if (files is None) == (payload_root is None):
        raise ValueError("give exactly one of files= and payload_root=")
    if not install_location.startswith("/"):
        raise ValueError(f"install_location must be absolute, got {install_location!r}")
    dest = Path(dest)
    workdir = dest.parent
    items = payload_items(files) if files is not None else tree_items(Path(payload_root))  # type: ignore[arg-type]
    kbytes = sum(
        -(-(i.data.stat().st_size if isinstance(i.data, Path) else len(i.data)) // 1024)
        for i in items
        if stat.S_ISREG(i.mode)
    )
    temps = [_archive(items, workdir, compression, pbzx_chunk_size)]
    try:
        members = [
            XarSource(
                "PackageInfo",
                package_info_xml(
                    identifier,
                    version,
                    install_location=install_location,
                    number_of_files=len(items),
                    install_kbytes=kbytes,
                    scripts=scripts or (),
                    postinstall_action=postinstall_action,
                    auth=auth,
                ),
                "zlib",
            ),
            XarSource("Payload", temps[0]),
        ]
        if scripts:
            script_files = {name: PayloadFile(text.encode("utf-8"), 0o755) for name, text in scripts.items()}
            temps.append(_archive(payload_items(script_files), workdir, "gzip", pbzx_chunk_size))
            members.append(XarSource("Scripts", temps[1]))
        return write_xar(dest, members, created=created)
    finally:
        for t in temps:
            t.unlink(missing_ok=True)


def distribution_xml(
    refs: Sequence[tuple[str, str, int, str]],
    *,
    title: str | None = None,
    product_id: str | None = None,
    product_version: str | None = None,
    host_architectures: Sequence[str] = ("arm64", "x86_64"),
    minimum_os: str | None = None,
) -> bytes:
    """A Distribution like productbuild's; `refs` are (id, version, installKBytes, component name)."""
    root = ET.Element("installer-gui-script", minSpecVersion="1")
    if title:
        ET.SubElement(root, "title").text = title
    ET.SubElement(root, "options", customize="never", hostArchitectures=",".join(host_architectures))
    if minimum_os:
        osv = ET.SubElement(ET.SubElement(root, "allowed-os-versions"), "os-version")
        osv.set("min", minimum_os)
    outline = ET.SubElement(root, "choices-outline")
    for ident, _, _, _ in refs:
        ET.SubElement(outline, "line", choice=ident)
    for ident, _, _, _ in refs:
        choice = ET.SubElement(root, "choice", id=ident, visible="false")
        ET.SubElement(choice, "pkg-ref", id=ident)
    for ident, version, kbytes, name in refs:
        ref = ET.SubElement(root, "pkg-ref", id=ident, version=version, installKBytes=str(kbytes))
        ref.text = f"#{name}"
    if product_id or product_version:
        product = ET.SubElement(root, "product")
        if product_id:
            product.set("id", product_id)
        if product_version:
            product.set("version", product_version)
    ET.indent(root, "    ")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + _tostring(root)


def build_product_archive(
    dest: Path,
    components: Sequence[Path],
    *,
    title: str | None = None,
    product_id: str | None = None,
    product_version: str | None = None,
    host_architectures: Sequence[str] = ("arm64", "x86_64"),
    minimum_os: str | None = None,
    created: dt.datetime | None = None,
) -> Path:
    """Build a product archive from component packages, like `productbuild --package A.pkg …`.

    Each component's members are copied (decoded and re-encoded, so checksums stay right) into a
    `<file name>` folder; the Distribution lists them in the given order.
    """
    from bootstrapper.flatpkg.package import FlatPackage

    dest = Path(dest)
    refs: list[tuple[str, str, int, str]] = []
    temps: list[Path] = []
    members: list[XarSource] = []
    try:
        for comp_path in components:
            name = Path(comp_path).name
            with FlatPackage(Path(comp_path)) as pkg:
                if pkg.kind != "component":
                    raise ValueError(f"{comp_path} is not a component package")
                info = pkg.components[0].info
                refs.append((info.identifier, info.version, info.install_kbytes or 0, name))
                for member in pkg.xar.members:
                    if member.type != "file" or "/" in member.path:
                        continue
                    fd, tmp_name = tempfile.mkstemp(dir=dest.parent)
                    temps.append(Path(tmp_name))
                    with os.fdopen(fd, "wb") as out, pkg.xar.open(member) as src:
                        shutil.copyfileobj(src, out, _COPY)
                    encoding: Encoding = "zlib" if member.path in ("PackageInfo", "Bom") else "stored"
                    members.append(XarSource(f"{name}/{member.path}", temps[-1], encoding))
        first = refs[0] if refs else None
        dist = distribution_xml(
            refs,
            title=title,
            product_id=product_id or (first[0] if first else None),
            product_version=product_version or (first[1] if first else None),
            host_architectures=host_architectures,
            minimum_os=minimum_os,
        )
        return write_xar(dest, [XarSource("Distribution", dist, "zlib"), *members], created=created)
    finally:
        for t in temps:
            t.unlink(missing_ok=True)


__all__ = [
    "CpioItem",
    "PayloadFile",
    "XarSource",
    "build_component_pkg",
    "build_product_archive",
    "write_cpio",
    "write_pbzx",
    "write_xar",
]
