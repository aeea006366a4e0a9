"""A streaming reader for xar archives, the container format of macOS flat packages.

Layout: a 28-byte big-endian header, a zlib-compressed XML table of contents (TOC), then the heap.
Every offset in the TOC is relative to the heap start (`header_size + toc_length_compressed`).
The TOC checksum lives in the heap and covers the *compressed* TOC bytes. Members are read
straight from the heap with `os.pread` and decoded chunk by chunk, so a member of several GB is
never held in memory; checksums and sizes are checked as the bytes go by.

Nothing here trusts the file: the header, the TOC size, every extent and every name are
checked, and each problem becomes one `PackageError` that names the file and the problem.
"""

from __future__ import annotations

import base64
import binascii
import bz2
import hashlib
import io
import lzma
import os
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from xml.etree.ElementTree import Element

from bootstrapper.errors import PackageError
from bootstrapper.flatpkg import _xml
from bootstrapper.flatpkg._io import ChunkReader, Closing
from bootstrapper.flatpkg.cpio import LZMA_MEMLIMIT

MAGIC = b"xar!"
HEADER = struct.Struct(">4sHHQQI")
#: A real TOC is a few KB (a 55-entry Zoom TOC is ~40 KB); anything claiming more is refused.
MAX_TOC_BYTES = 16 * 1024 * 1024
#: Members read whole into memory (PackageInfo, Distribution) are small; this caps them.
MAX_SMALL_MEMBER = 16 * 1024 * 1024
CHUNK = 1024 * 1024
#: RSA signatures are 256-512 bytes and CMS ones a few KB; a larger claim is not a signature.
MAX_SIGNATURE = 1024 * 1024
#: Folders nest a couple of levels in a package (`x.pkg/Payload`); deeper is corrupt or hostile.
MAX_DEPTH = 64
#: Every number in the TOC is an offset or a size within one file: 20 digits hold any of them.
_NUMBER = re.compile(r"[0-9]{1,20}")

#: The header's checksum algorithm numbers; 3 means "named in the TOC".
_HEADER_ALGS = {0: "none", 1: "sha1", 2: "md5", 3: "other"}
_HASHES = {
    "sha1": "sha1",
    "sha": "sha1",
    "md5": "md5",
    "sha224": "sha224",
    "sha256": "sha256",
    "sha384": "sha384",
    "sha512": "sha512",
}
STORED = "application/octet-stream"
#: xar calls zlib streams "application/x-gzip"; both zlib and real gzip headers are accepted.
ZLIB = "application/x-gzip"
BZIP2 = "application/x-bzip2"
_ENCODINGS = {STORED, ZLIB, BZIP2, "application/x-lzma", "application/x-xz"}


@dataclass(frozen=True)
class Header:
    magic: bytes
    header_size: int
    version: int
    toc_length_compressed: int
    toc_length_uncompressed: int
    checksum_alg: int


@dataclass(frozen=True)
class Checksum:
    style: str
    hexdigest: str


@dataclass(frozen=True)
class Extent:
    """Where a member's bytes live in the heap and how they are encoded."""

    offset: int
    length: int
    size: int | None
    encoding: str
    archived: Checksum | None = None
    extracted: Checksum | None = None


@dataclass(frozen=True)
class ExtendedAttribute:
    name: str
    data: Extent


@dataclass(frozen=True)
class Member:
    id: str
    path: str
    type: str
    data: Extent | None
    mode: int | None = None
    link: str | None = None
    eas: tuple[ExtendedAttribute, ...] = ()

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def parent(self) -> str:
        return self.path.rpartition("/")[0]


@dataclass(frozen=True)
class SignatureBlock:
    """An RSA `<signature>` or CMS `<x-signature>`: where its bytes are and the certificates (DER)."""

    element: str
    style: str
    offset: int
    size: int
    certificates: tuple[bytes, ...]


class _Decoder(Protocol):
    def feed(self, data: bytes, limit: int) -> bytes: ...
    def pending(self) -> bool: ...
    def finished(self) -> bool: ...


class XarArchive(Closing):
    """An open xar file: header, TOC and members are parsed and checked when it is opened."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._fh = open(self.path, "rb")  # noqa: SIM115 (closed by close()/__exit__)
        except OSError as exc:
            raise PackageError(f"{self.path}: cannot open ({exc.strerror or exc})") from None
        with self.closed_on_error():
            self._fd = self._fh.fileno()
            self.file_size = os.fstat(self._fd).st_size
            self._load()

    # --- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self._fh.close()

    def error(self, problem: str) -> PackageError:
        return PackageError(f"{self.path}: {problem}")

    # --- parsing -----------------------------------------------------------------------------

    def _load(self) -> None:
        raw = self._pread(0, HEADER.size)
        if len(raw) < 4 or raw[:4] != MAGIC:
            got = raw[:4].hex() or "an empty file"
            raise self.error(f"not a xar archive (wrong magic: expected 78617221 'xar!', got {got})")
        if len(raw) < HEADER.size:
            raise self.error(f"truncated: the xar header needs {HEADER.size} bytes, the file has {len(raw)}")
        h = Header(*HEADER.unpack(raw))
        if h.header_size < HEADER.size:
            raise self.error(f"bad xar header: header size {h.header_size} is below {HEADER.size}")
        if h.version != 1:
            raise self.error(f"unsupported xar version {h.version} (only version 1 exists)")
        if h.toc_length_uncompressed > MAX_TOC_BYTES:
            raise self.error(
                f"the TOC claims {h.toc_length_uncompressed} bytes uncompressed; "
                f"refusing more than {MAX_TOC_BYTES} (corrupt or hostile archive)"
            )
        if h.toc_length_compressed > MAX_TOC_BYTES:
            raise self.error(
                f"the TOC claims {h.toc_length_compressed} bytes compressed; "
                f"refusing more than {MAX_TOC_BYTES} (corrupt or hostile archive)"
            )
        self.header = h
        self.heap_start = h.header_size + h.toc_length_compressed
        if self.heap_start > self.file_size:
            raise self.error(
                f"truncated: the TOC ends at byte {self.heap_start} but the file has {self.file_size}"
            )
        self.toc_compressed = self._pread(h.header_size, h.toc_length_compressed)
        self.toc_xml = self._inflate_toc(self.toc_compressed, h.toc_length_uncompressed)
        root = _xml.parse(self.toc_xml, f"{self.path}: TOC")
        toc = root.find("toc") if _xml.local(root.tag) == "xar" else None
        if toc is None:
            raise self.error("the TOC has no <xar><toc> element")
        self.creation_time = _xml.text(toc.find("creation-time")) or None
        self.toc_checksum = self._check_toc(toc)
        self.signatures = tuple(self._signatures(toc))
        members: list[Member] = []
        self._seen: set[str] = set()
        self._walk(toc, members)
        self.members = tuple(members)
        self._by_path = {m.path: m for m in members}
        ends = [self.heap_start + e.offset + e.length for e in self._extents()]
        if self.toc_checksum is not None:
            ends.append(self.heap_start + self._toc_checksum_extent[0] + self._toc_checksum_extent[1])
        ends.extend(self.heap_start + s.offset + s.size for s in self.signatures)
        #: The end of the last referenced byte; anything after it (padding, a stapled ticket) is ignored.
        self.heap_end = max(ends, default=self.heap_start)

    def _inflate_toc(self, data: bytes, expected: int) -> bytes:
        d = zlib.decompressobj()
        try:
            out = d.decompress(data, expected + 1)
        except zlib.error as exc:
            raise self.error(f"the TOC is not valid zlib data ({exc})") from None
        if len(out) > expected or d.unconsumed_tail:
            raise self.error(f"the TOC inflates to more than the {expected} bytes its header claims")
        if not d.eof:
            raise self.error("truncated: the compressed TOC ends early")
        if len(out) != expected:
            raise self.error(f"the TOC inflates to {len(out)} bytes, but its header claims {expected}")
        return out

    def _check_toc(self, toc: Element) -> Checksum | None:
        elem = toc.find("checksum")
        alg = _HEADER_ALGS.get(self.header.checksum_alg, "unknown")
        if elem is None:
            if alg != "none":
                raise self.error(f"the header names checksum algorithm {alg} but the TOC has no <checksum>")
            self._toc_checksum_extent = (0, 0)
            return None
        style = (elem.get("style") or alg).lower()
        name = self._hash_name(style)
        if alg in ("sha1", "md5") and alg != name:
            raise self.error(f"the header says the TOC checksum is {alg}, the TOC says {style}")
        offset, size = self._int(elem, "offset", "TOC checksum"), self._int(elem, "size", "TOC checksum")
        digest_size = hashlib.new(name).digest_size
        if size != digest_size:
            raise self.error(f"the TOC checksum is {size} bytes; {style} digests are {digest_size}")
        self._in_heap(offset, size, "the TOC checksum")
        self._toc_checksum_extent = (offset, size)
        stored = self._heap(offset, size, "the TOC checksum")
        actual = hashlib.new(name, self.toc_compressed).digest()
        if stored != actual:
            raise self.error(
                f"TOC checksum mismatch ({style}): the heap says {stored.hex()}, "
                f"the TOC hashes to {actual.hex()}"
            )
        return Checksum(style, actual.hex())

    def _signatures(self, toc: Element) -> Iterator[SignatureBlock]:
        for elem in toc:
            tag = _xml.local(elem.tag)
            if tag not in ("signature", "x-signature"):
                continue
            where = f"<{tag}>"
            offset, size = self._int(elem, "offset", where), self._int(elem, "size", where)
            if size > MAX_SIGNATURE:
                raise self.error(f"{where} claims {size} bytes; a signature is at most {MAX_SIGNATURE}")
            self._in_heap(offset, size, where)
            certs: list[bytes] = []
            for node in elem.iter():
                if _xml.local(node.tag) == "X509Certificate":
                    try:
                        certs.append(base64.b64decode("".join((node.text or "").split()), validate=True))
                    except binascii.Error:
                        raise self.error(f"{where}: a certificate is not valid base64") from None
            yield SignatureBlock(tag, elem.get("style") or "", offset, size, tuple(certs))

    def _walk(self, top: Element, out: list[Member]) -> None:
        """Every `<file>` under `top`, parents before children, with a loop (not recursion) and a
        depth cap, so a TOC nested thousands deep is one error rather than a RecursionError."""
        stack: list[tuple[Iterator[Element], str]] = [(iter(top.findall("file")), "")]
        while stack:
            elem = next(stack[-1][0], None)
            if elem is None:
                stack.pop()
                continue
            path = self._member_of(elem, stack[-1][1], out)
            children = elem.findall("file")
            if children:
                if len(stack) >= MAX_DEPTH:
                    raise self.error(f"the TOC nests folders more than {MAX_DEPTH} deep (at {path!r})")
                stack.append((iter(children), path))

    def _member_of(self, elem: Element, prefix: str, out: list[Member]) -> str:
        name = self._name(elem)
        path = f"{prefix}/{name}" if prefix else name
        if path in self._seen:
            raise self.error(f"the TOC lists {path!r} twice")
        self._seen.add(path)
        kind = _xml.text(elem.find("type")) or "file"
        data = elem.find("data")
        mode_text = _xml.text(elem.find("mode"))
        try:
            mode = int(mode_text, 8) if mode_text else None
        except ValueError:
            raise self.error(f"{path}: bad mode {mode_text!r}") from None
        link = elem.find("link")
        eas = tuple(
            ExtendedAttribute(_xml.text(ea.find("name")), self._extent(ea, f"{path} (attribute)"))
            for ea in elem.findall("ea")
        )
        out.append(
            Member(
                id=elem.get("id", ""),
                path=path,
                type=kind,
                data=self._extent(data, path) if data is not None else None,
                mode=mode,
                link=(link.text or "") if link is not None else None,
                eas=eas,
            )
        )
        return path

    def _name(self, elem: Element) -> str:
        node = elem.find("name")
        if node is None:
            raise self.error(f"TOC entry id {elem.get('id')!r} has no <name>")
        name = node.text or ""
        if node.get("enctype") == "base64":
            try:
                name = base64.b64decode(name).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise self.error(f"TOC entry id {elem.get('id')!r} has an undecodable name") from None
        if name in ("", ".", "..") or "/" in name or "\0" in name:
            raise self.error(f"unsafe member name {name!r} in the TOC")
        return name

    def _extent(self, elem: Element, where: str) -> Extent:
        offset, length = self._int(elem, "offset", where), self._int(elem, "length", where)
        size_text = _xml.text(elem.find("size"))
        size = self._int(elem, "size", where) if size_text else None
        enc = elem.find("encoding")
        encoding = (enc.get("style") if enc is not None else None) or STORED
        if encoding not in _ENCODINGS:
            raise self.error(f"{where}: unsupported encoding {encoding!r}")
        self._in_heap(offset, length, where)
        archived, extracted = self._sum(elem, "archived-checksum"), self._sum(elem, "extracted-checksum")
        return Extent(offset, length, size, encoding, archived, extracted)

    def _sum(self, elem: Element, tag: str) -> Checksum | None:
        node = elem.find(tag)
        if node is None:
            return None
        style = (node.get("style") or "").lower()
        self._hash_name(style)
        return Checksum(style, _xml.text(node).lower())

    def _hash_name(self, style: str) -> str:
        try:
            return _HASHES[style]
        except KeyError:
            raise self.error(f"unsupported checksum algorithm {style!r}") from None

    def _int(self, elem: Element, tag: str, where: str) -> int:
        value = _xml.text(elem.find(tag))
        if not _NUMBER.fullmatch(value):
            raise self.error(f"{where}: <{tag}> is {value[:40]!r}, expected a non-negative integer")
        return int(value)

    def _in_heap(self, offset: int, length: int, where: str) -> None:
        """Refuse an extent that does not lie inside the file, before anything is read from it."""
        if self.heap_start + offset + length > self.file_size:
            raise self.error(
                f"truncated: {where} needs heap bytes {offset}..{offset + length}, "
                f"but the file ends at heap offset {self.file_size - self.heap_start}"
            )

    def _extents(self) -> Iterator[Extent]:
        for m in self.members:
            if m.data is not None:
                yield m.data
            for ea in m.eas:
                yield ea.data

    # --- reading -----------------------------------------------------------------------------

    def _pread(self, offset: int, size: int) -> bytes:
        if offset < 0 or size < 0 or offset >= self.file_size:
            return b""  # callers check extents first; this keeps os.pread inside the file regardless
        size = min(size, self.file_size - offset)
        chunks = []
        while size > 0:
            chunk = os.pread(self._fd, min(size, CHUNK), offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def _heap(self, offset: int, size: int, what: str) -> bytes:
        data = self._pread(self.heap_start + offset, size)
        if len(data) != size:
            raise self.error(f"truncated: {what} ends beyond the end of the file")
        return data

    def heap_bytes(self, offset: int, size: int) -> bytes:
        """Raw heap bytes (signatures); bounds were checked when the TOC was read."""
        return self._heap(offset, size, f"heap bytes {offset}..{offset + size}")

    def member(self, path: str) -> Member | None:
        return self._by_path.get(path)

    def children(self, path: str) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.parent == path)

    def open(self, member: Member | Extent, what: str | None = None) -> io.BufferedReader:
        """A streaming, decoding, verifying reader of one member (an empty member reads as b"")."""
        if isinstance(member, Member):
            what = what or member.path
            extent = member.data
        else:
            extent = member
        label = what or "member"
        return io.BufferedReader(_MemberStream(self, extent, label), CHUNK)

    def read(self, member: Member | Extent, what: str | None = None, limit: int = MAX_SMALL_MEMBER) -> bytes:
        """The whole decoded member, for small members only (PackageInfo, Distribution)."""
        with self.open(member, what) as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise self.error(f"{what or 'member'} is larger than {limit} bytes")
        return data

    def verify(self, member: Member) -> None:
        """Read a member through once so that every checksum and size is checked before it is used."""
        with self.open(member) as fh:
            while fh.read(CHUNK):
                pass


class _MemberStream(ChunkReader):
    """Raw heap bytes → decoded bytes, checking archived/extracted checksums and the declared size."""

    def __init__(self, archive: XarArchive, extent: Extent | None, what: str) -> None:
        super().__init__()
        self._a = archive
        self._e = extent
        self._what = what
        self._pos = 0
        self._buf = b""
        self._off = 0
        self._out = 0
        self._done = extent is None
        self._ahash = hashlib.new(_HASHES[extent.archived.style]) if extent and extent.archived else None
        self._xhash = hashlib.new(_HASHES[extent.extracted.style]) if extent and extent.extracted else None
        self._dec = _decoder(extent.encoding if extent else STORED)

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buf and not self._done:
            self._fill()
        return self._take(b)

    def _fill(self) -> None:
        e = self._e
        assert e is not None
        limit = CHUNK
        if self._dec.pending():
            out = self._decode(b"", limit)
        else:
            raw = self._a._pread(self._a.heap_start + e.offset + self._pos, min(CHUNK, e.length - self._pos))
            if not raw:
                self._finish()
                return
            self._pos += len(raw)
            if self._ahash is not None:
                self._ahash.update(raw)
            out = self._decode(raw, limit)
        if out:
            self._out += len(out)
            if e.size is not None and self._out > e.size:
                raise self._a.error(f"{self._what} decodes to more than its declared {e.size} bytes")
            if self._xhash is not None:
                self._xhash.update(out)
            self._buf = out

    def _decode(self, data: bytes, limit: int) -> bytes:
        try:
            return self._dec.feed(data, limit)
        except (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError) as exc:
            raise self._a.error(f"{self._what} is corrupt ({self._e and self._e.encoding}: {exc})") from None

    def _finish(self) -> None:
        e = self._e
        assert e is not None
        self._done = True
        if self._pos != e.length:
            raise self._a.error(f"truncated: {self._what} ends early")
        if not self._dec.finished():
            raise self._a.error(f"{self._what} is corrupt: its {e.encoding} stream is cut short")
        if e.size is not None and self._out != e.size:
            raise self._a.error(f"{self._what} decodes to {self._out} bytes, but the TOC says {e.size}")
        for kind, want, h in (("archived", e.archived, self._ahash), ("extracted", e.extracted, self._xhash)):
            if want is not None and h is not None and h.hexdigest() != want.hexdigest:
                raise self._a.error(
                    f"checksum mismatch in {self._what}: {kind} {want.style} should be {want.hexdigest}, "
                    f"got {h.hexdigest()}"
                )


class _Stored:
    def feed(self, data: bytes, limit: int) -> bytes:
        return data

    def pending(self) -> bool:
        return False

    def finished(self) -> bool:
        return True


class _Zlib:
    def __init__(self) -> None:
        self._d = zlib.decompressobj(zlib.MAX_WBITS | 32)

    def feed(self, data: bytes, limit: int) -> bytes:
        return _decompress(self._d, self._d.unconsumed_tail + data, limit)

    def pending(self) -> bool:
        return bool(self._d.unconsumed_tail)

    def finished(self) -> bool:
        return self._d.eof


class _Incremental:
    """bz2/lzma decompressors share the `needs_input` protocol."""

    def __init__(self, d: bz2.BZ2Decompressor | lzma.LZMADecompressor) -> None:
        self._d = d

    def feed(self, data: bytes, limit: int) -> bytes:
        return _decompress(self._d, data, limit)

    def pending(self) -> bool:
        return not self._d.eof and not self._d.needs_input

    def finished(self) -> bool:
        return self._d.eof


class _Decompressor(Protocol):
    """What zlib, bz2 and lzma decompressors have in common."""

    @property
    def eof(self) -> bool: ...
    def decompress(self, data: bytes, max_length: int, /) -> bytes: ...


def _decompress(d: _Decompressor, data: bytes, limit: int) -> bytes:
    """At most `limit` bytes of output; once the stream has ended, only NUL padding may follow."""
    if d.eof:
        if data.strip(b"\0"):
            raise ValueError("data after the end of the stream")
        return b""
    return d.decompress(data, limit)


def _decoder(encoding: str) -> _Decoder:
    if encoding == STORED:
        return _Stored()
    if encoding == ZLIB:
        return _Zlib()
    if encoding == BZIP2:
        return _Incremental(bz2.BZ2Decompressor())
    return _Incremental(lzma.LZMADecompressor(memlimit=LZMA_MEMLIMIT))
