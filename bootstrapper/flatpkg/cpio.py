"""Payload and Scripts archives: cpio (odc and newc), raw or wrapped in gzip, bzip2 or pbzx.

Everything streams: `CpioReader` yields one entry at a time and the caller copies or skips its
data before asking for the next, so memory stays flat whatever the payload size.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from bootstrapper.errors import PackageError
from bootstrapper.flatpkg._io import ChunkReader

ODC = b"070707"
NEWC = b"070701"
NEWC_CRC = b"070702"
TRAILER = "TRAILER!!!"
PBZX = b"pbzx"
GZIP = b"\x1f\x8b"
BZIP2 = b"BZh"
#: The longest entry name accepted (PATH_MAX on macOS is 1024; leave room for odd packages).
MAX_NAME = 4096
#: A symlink's target is carried as its data; cap it like a name.
MAX_LINK = 4096
#: pbzx chunks are 16 MiB in Apple's packages; refuse absurd claims before allocating anything.
MAX_PBZX_CHUNK = 256 * 1024 * 1024
CHUNK = 1024 * 1024

_ODC_LEN = 76
_NEWC_LEN = 110
#: Header fields are fixed-width digits only: `int()` alone would also take "-1", " 7" or "0x1f".
_OCTAL = re.compile(rb"[0-7]+")
_HEX = re.compile(rb"[0-9a-fA-F]{8}")
#: What an xz chunk may ask for to decode (Apple's pbzx chunks need about 9 MB).
LZMA_MEMLIMIT = 256 * 1024 * 1024


@dataclass(frozen=True)
class CpioEntry:
    name: str
    mode: int
    uid: int
    gid: int
    mtime: int
    size: int
    nlink: int
    dev: int
    ino: int
    rdev: int

    @property
    def file_type(self) -> int:
        return self.mode & 0o170000


Problem = Callable[[str], PackageError]


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class CpioReader:
    """Iterate the entries of a cpio stream; call `read_data`/`copy_data` or let the next step skip."""

    def __init__(self, stream: Readable, problem: Problem) -> None:
        self._s = stream
        #: Makes the one error for this archive (it names the package and the member).
        self.problem = problem
        self._left = 0
        self._pad = 0
        self.format = ""

    def __iter__(self) -> Iterator[CpioEntry]:
        while True:
            self._skip_rest()
            entry = self._header()
            if entry is None:
                return
            yield entry

    def _exact(self, n: int, what: str) -> bytes:
        data = _read_exact(self._s, n)
        if len(data) != n:
            raise self.problem(f"truncated cpio archive: {what} ends early")
        return data

    def _header(self) -> CpioEntry | None:
        magic = _read_exact(self._s, 6)
        if not magic:
            raise self.problem("truncated cpio archive: no TRAILER!!! entry")
        if magic == ODC:
            self.format = self.format or "odc"
            raw = self._exact(_ODC_LEN - 6, "a header")
            fields = [raw[i : i + n] for i, n in _ODC_FIELDS]
            if not all(_OCTAL.fullmatch(x) for x in fields):
                raise self.problem("corrupt cpio archive: a header field is not octal")
            f = [int(x, 8) for x in fields]
            dev, ino, mode, uid, gid, nlink, rdev, mtime, namesize, size = f
            name_pad = 0
            self._pad_unit = 0
        elif magic in (NEWC, NEWC_CRC):
            self.format = self.format or "newc"
            raw = self._exact(_NEWC_LEN - 6, "a header")
            fields = [raw[i * 8 : i * 8 + 8] for i in range(13)]
            if not all(_HEX.fullmatch(x) for x in fields):
                raise self.problem("corrupt cpio archive: a header field is not hex")
            f = [int(x, 16) for x in fields]
            ino, mode, uid, gid, nlink, mtime, size, dmaj, dmin, rmaj, rmin, namesize, _check = f
            dev, rdev = (dmaj << 8) | dmin, (rmaj << 8) | rmin
            name_pad = (-(_NEWC_LEN + namesize)) % 4
            self._pad_unit = 4
        else:
            raise self.problem(f"corrupt cpio archive: bad entry magic {magic!r}")
        if namesize < 1 or namesize > MAX_NAME:
            raise self.problem(f"corrupt cpio archive: entry name of {namesize} bytes")
        raw_name = self._exact(namesize + name_pad, "an entry name")[:namesize]
        if raw_name[-1:] != b"\0":
            raise self.problem("corrupt cpio archive: an entry name is not NUL-terminated")
        try:
            name = raw_name[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise self.problem(f"cpio entry name {raw_name[:-1]!r} is not UTF-8") from None
        if name == TRAILER:
            return None
        self._left = size
        self._pad = (-size) % 4 if self._pad_unit else 0
        return CpioEntry(name, mode, uid, gid, mtime, size, nlink, dev, ino, rdev)

    def chunks(self) -> Iterator[bytes]:
        """The current entry's data, in chunks of at most 1 MiB."""
        while self._left:
            chunk = self._s.read(min(CHUNK, self._left))
            if not chunk:
                raise self.problem("truncated cpio archive: file data ends early")
            self._left -= len(chunk)
            yield chunk

    def read_data(self, limit: int) -> bytes:
        if self._left > limit:
            raise self.problem(f"cpio entry data of {self._left} bytes is over the {limit}-byte limit")
        return b"".join(self.chunks())

    def _skip_rest(self) -> None:
        for _ in self.chunks():
            pass
        if self._pad:
            self._exact(self._pad, "padding")
            self._pad = 0

    _pad_unit = 0


def odc_header(
    name: str,
    *,
    mode: int,
    size: int,
    ino: int = 0,
    uid: int = 0,
    gid: int = 0,
    nlink: int = 1,
    mtime: int = 0,
) -> bytes:
    """One odc header plus the NUL-terminated name (the writer's half of the format)."""
    raw = name.encode("utf-8") + b"\0"
    if size >= 8**11:
        raise ValueError(f"{name}: {size} bytes does not fit an odc cpio entry (8 GiB limit)")
    fields = (0, ino % 8**6, mode, uid, gid, nlink, 0, mtime, len(raw), size)
    widths = (6, 6, 6, 6, 6, 6, 6, 11, 6, 11)
    return ODC + b"".join(b"%0*o" % (w, v) for w, v in zip(widths, fields, strict=True)) + raw


#: An archive with no entries: what an empty Payload member stands for.
EMPTY = odc_header(TRAILER, mode=0, size=0, nlink=1)

_ODC_FIELDS = [(0, 6), (6, 6), (12, 6), (18, 6), (24, 6), (30, 6), (36, 6), (42, 11), (53, 6), (59, 11)]


def _read_exact(stream: Readable, n: int) -> bytes:
    data = stream.read(n)
    while data and len(data) < n:
        more = stream.read(n - len(data))
        if not more:
            break
        data += more
    return data


class PbzxReader(ChunkReader):
    """Decode Apple's pbzx stream: 'pbzx', u64 chunk size, then (u64 size, u64 compressed size, data)*.

    Each chunk is its own xz stream, or stored as-is when both sizes are equal. Chunks are decoded
    piece by piece with a bounded output size, so a 16 MiB chunk never sits in memory whole.
    """

    def __init__(self, stream: Readable, problem: Problem) -> None:
        super().__init__()
        self._s = stream
        self.problem = problem
        head = _read_exact(stream, 12)
        if len(head) < 12 or head[:4] != PBZX:
            raise problem("corrupt pbzx payload: bad header")
        (self.chunk_size,) = struct.unpack(">Q", head[4:])
        self.chunks = 0
        self._in_left = 0
        self._out_left = 0
        self._stored = False
        self._dec: lzma.LZMADecompressor | None = None
        self._buf = b""
        self._off = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buf:
            if not self._in_left and not self._out_left and (self._dec is None or self._dec.eof):
                if not self._next_chunk():
                    return 0
                continue
            self._buf = self._step()
        return self._take(b)

    def _next_chunk(self) -> bool:
        head = _read_exact(self._s, 16)
        if not head:
            return False
        if len(head) != 16:
            raise self.problem("truncated pbzx payload: a chunk header ends early")
        size, csize = struct.unpack(">QQ", head)
        if size > MAX_PBZX_CHUNK or csize > MAX_PBZX_CHUNK:
            raise self.problem(f"corrupt pbzx payload: a chunk claims {max(size, csize)} bytes")
        self.chunks += 1
        self._in_left, self._out_left = csize, size
        self._stored = size == csize
        self._dec = None if self._stored else lzma.LZMADecompressor(lzma.FORMAT_XZ, memlimit=LZMA_MEMLIMIT)
        return True

    def _step(self) -> bytes:
        if self._stored:
            data = self._s.read(min(CHUNK, self._in_left))
            if not data:
                raise self.problem("truncated pbzx payload: stored chunk ends early")
            self._in_left -= len(data)
            self._out_left -= len(data)
            return data
        dec = self._dec
        assert dec is not None
        data = b""
        if dec.needs_input:
            if not self._in_left:
                raise self.problem("corrupt pbzx payload: an xz chunk ends before its stream does")
            data = self._s.read(min(CHUNK, self._in_left))
            if not data:
                raise self.problem("truncated pbzx payload: xz chunk ends early")
            self._in_left -= len(data)
        try:
            out = dec.decompress(data, CHUNK)
        except lzma.LZMAError as exc:
            raise self.problem(f"corrupt pbzx payload: {exc}") from None
        if len(out) > self._out_left:
            raise self.problem("corrupt pbzx payload: a chunk decodes to more than it claims")
        self._out_left -= len(out)
        if dec.eof and (self._in_left or self._out_left):
            raise self.problem("corrupt pbzx payload: a chunk's sizes do not match its data")
        return out


def sniff(stream: io.BufferedReader) -> str:
    """Name the payload format from its first bytes: gzip, pbzx, bzip2, cpio or unknown."""
    head = stream.peek(6)[:6]
    if head.startswith(GZIP):
        return "gzip"
    if head.startswith(PBZX):
        return "pbzx"
    if head.startswith(BZIP2):
        return "bzip2"
    if head in (ODC, NEWC, NEWC_CRC):
        return "cpio"
    return "unknown"


def open_archive(stream: io.BufferedReader, problem: Problem) -> tuple[str, CpioReader]:
    """Wrap a Payload/Scripts stream in the right decoder; returns (format name, reader)."""
    kind = sniff(stream)
    inner: Readable
    if kind == "gzip":
        inner = io.BufferedReader(_Guarded(gzip.GzipFile(fileobj=stream, mode="rb"), problem, "gzip"), CHUNK)
    elif kind == "pbzx":
        inner = io.BufferedReader(PbzxReader(stream, problem), CHUNK)
    elif kind == "bzip2":
        inner = io.BufferedReader(_Guarded(bz2.BZ2File(stream), problem, "bzip2"), CHUNK)
    elif kind == "cpio":
        inner = stream
    else:
        head = stream.peek(6)[:6]
        raise problem(
            f"unknown payload format (starts {head.hex() or 'empty'}); expected gzip, pbzx or cpio"
            " (Apple Archive payloads are not supported)"
        )
    name = "cpio" if kind == "cpio" else f"{kind}-cpio"
    return name, CpioReader(inner, problem)


class _Guarded(io.RawIOBase):
    """Turns a decompressor's errors (gzip.BadGzipFile, EOFError, zlib.error) into PackageError."""

    def __init__(self, inner: Readable, problem: Problem, what: str) -> None:
        super().__init__()
        self._inner = inner
        self.problem = problem
        self._what = what

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            data = self._inner.read(len(b))
        except (OSError, EOFError, zlib.error, ValueError) as exc:
            raise self.problem(f"corrupt {self._what} payload: {exc or type(exc).__name__}") from None
        b[: len(data)] = data
        return len(data)
