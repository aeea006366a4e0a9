"""Hostile flat packages, generated: a hypothesis strategy and a seeded generator for the fuzz bench.

Every case is the bytes of one `.pkg` made to break a reader: TOC offsets and lengths out of range,
checksum offsets of 2^64-1, huge heap offsets, truncated heaps, broken gzip/pbzx/bzip2/xz streams,
cpio entries with `..` or absolute names, hard links then symlinks of the same name, duplicates,
deep nesting, giant declared sizes, bad XML and XML entity tricks, hostile certificates, and plain
byte mutations of good packages. The recipes draw through one small `Draw` interface, so the same
code runs under hypothesis (which shrinks a failure to a small case) and from `random.Random`
(bench/fuzz_pkg.py, thousands of cases without hypothesis's bookkeeping).

`exercise` runs one package through everything that reads packages and returns what happened;
anything but success or a one-line `PackageError` escapes it, which is the bug being hunted.
"""

from __future__ import annotations

import bz2
import datetime as dt
import gzip
import hashlib
import io
import json
import lzma
import os
import random
import stat
import struct
import tempfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol, TypeVar

from hypothesis import strategies as st

from bootstrapper.commands.pkg import facts_json, facts_text, payload_files
from bootstrapper.errors import PackageError
from bootstrapper.flatpkg import Component, FlatPackage, read_package
from bootstrapper.flatpkg.extract import extract, location_parts, scan
from tests.support.pkgwriter import CpioItem, XarSource, build_component_pkg, write_cpio, write_xar

T = TypeVar("T")

#: Numbers that break offset and length arithmetic, as they would be written in a TOC.
HOSTILE_NUMBERS = (
    "18446744073709551615",  # 2^64-1
    "18446744073709551616",
    "9223372036854775807",  # 2^63-1
    "9223372036854775808",
    "4294967296",
    "-1",
    "²",
    "١٢",
    "1e3",
    "0x10",
    " 7 ",
    "9" * 200,
    "",
)


#: An absolute symlink target in the cases: a test makes it an empty folder and checks it stays so.
OUTSIDE = os.path.join(tempfile.gettempdir(), f"bootstrapper-fuzz-outside-{os.getpid()}")


class Draw(Protocol):
    """The choices a recipe makes; hypothesis or a seeded `random.Random` answers them."""

    def integer(self, lo: int, hi: int) -> int: ...
    def choice(self, options: Sequence[T]) -> T: ...
    def boolean(self) -> bool: ...
    def blob(self, max_size: int) -> bytes: ...


class RandomDraw:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def choice(self, options: Sequence[T]) -> T:
        return options[self.rng.randrange(len(options))]

    def boolean(self) -> bool:
        return self.rng.random() < 0.5

    def blob(self, max_size: int) -> bytes:
        return self.rng.randbytes(self.rng.randint(0, max_size))


class _HypothesisDraw:
    def __init__(self, draw: st.DrawFn) -> None:
        self._draw = draw

    def integer(self, lo: int, hi: int) -> int:
        return self._draw(st.integers(lo, hi))

    def choice(self, options: Sequence[T]) -> T:
        return self._draw(st.sampled_from(options))

    def boolean(self) -> bool:
        return self._draw(st.booleans())

    def blob(self, max_size: int) -> bytes:
        return self._draw(st.binary(max_size=max_size))


@dataclass(frozen=True)
class Case:
    recipe: str
    data: bytes = field(repr=False)


# --- building blocks: an in-memory xar whose every field can be wrong ----------------------------


@dataclass
class Mem:
    """One xar member: `data` is what goes in the heap, `raw` what it decodes to (for checksums)."""

    path: str
    data: bytes
    style: str = "application/octet-stream"
    raw: bytes | None = None
    offset: str | None = None
    length: str | None = None
    size: str | None = None


def encode(raw: bytes, how: str) -> tuple[bytes, str]:
    if how == "zlib":
        return zlib.compress(raw), "application/x-gzip"
    if how == "bzip2":
        return bz2.compress(raw), "application/x-bzip2"
    if how == "xz":
        return lzma.compress(raw), "application/x-xz"
    return raw, "application/octet-stream"


def member(path: str, raw: bytes, how: str = "stored") -> Mem:
    data, style = encode(raw, how)
    return Mem(path, data, style, raw)


def xar(
    members: Sequence[Mem],
    *,
    checksum: tuple[str, str] = ("0", "20"),
    checksum_style: str = "sha1",
    header_alg: int = 1,
    extra_toc: str = "",
    header: dict[str, int] | None = None,
    toc_text: Callable[[bytes], bytes] | None = None,
) -> bytes:
    """A xar with a SHA-1 TOC checksum at heap 0 (right unless told otherwise), members after it."""
    files: dict[str, list[str]] = {"": []}
    order: list[str] = [""]
    heap = b""
    offset = 20
    for m in members:
        parts = m.path.split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            if folder not in files:
                files[folder] = []
                order.append(folder)
                files["/".join(parts[: i - 1])].append(f"@{folder}")
        raw = m.raw if m.raw is not None else m.data
        xml = (
            f"<data><offset>{m.offset if m.offset is not None else offset}</offset>"
            f"<length>{m.length if m.length is not None else len(m.data)}</length>"
            f"<size>{m.size if m.size is not None else len(raw)}</size>"
            f'<encoding style="{m.style}"/>'
            f'<archived-checksum style="sha1">{hashlib.sha1(m.data).hexdigest()}</archived-checksum>'  # noqa: S324
            f'<extracted-checksum style="sha1">{hashlib.sha1(raw).hexdigest()}</extracted-checksum>'  # noqa: S324
            f"</data><type>file</type><name>{parts[-1]}</name>"
        )
        files["/".join(parts[:-1])].append(xml)
        heap += m.data
        offset += len(m.data)

    ids = iter(range(1, 1 << 30))

    def render(folder: str) -> str:
        out = []
        for item in files[folder]:
            if item.startswith("@"):
                name = item[1:].rsplit("/", 1)[-1]
                out.append(
                    f'<file id="{next(ids)}"><name>{name}</name><type>directory</type>{render(item[1:])}</file>'
                )
            else:
                out.append(f'<file id="{next(ids)}">{item}</file>')
        return "".join(out)

    toc = (
        '<?xml version="1.0" encoding="UTF-8"?><xar><toc><creation-time>2026-01-01T00:00:00</creation-time>'
        f'<checksum style="{checksum_style}"><offset>{checksum[0]}</offset><size>{checksum[1]}</size></checksum>'
        f"{extra_toc}{render('')}</toc></xar>"
    ).encode()
    if toc_text is not None:
        toc = toc_text(toc)
    packed = zlib.compress(toc)
    fields = {
        "magic": 0,
        "header_size": 28,
        "version": 1,
        "toc_length_compressed": len(packed),
        "toc_length_uncompressed": len(toc),
        "checksum_alg": header_alg,
    }
    fields.update(header or {})
    head = struct.pack(
        ">4sHHQQI",
        b"xar!" if not fields["magic"] else b"xar?",
        fields["header_size"] & 0xFFFF,
        fields["version"] & 0xFFFF,
        fields["toc_length_compressed"] & (2**64 - 1),
        fields["toc_length_uncompressed"] & (2**64 - 1),
        fields["checksum_alg"] & 0xFFFFFFFF,
    )
    pad = b"\0" * max(0, min(fields["header_size"], 4096) - 28)
    return head + pad + packed + hashlib.sha1(packed).digest() + heap  # noqa: S324


def package_info(identifier: str = "com.example.hostile", location: str = "/", extra: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><pkg-info format-version="2" identifier="{identifier}" '
        f'version="1" install-location="{location}" auth="root"><payload numberOfFiles="3" '
        f'installKBytes="1"/>{extra}</pkg-info>'
    ).encode()


def distribution(refs: Sequence[str]) -> bytes:
    lines = "".join(
        f'<pkg-ref id="com.example.{i}" version="1" installKBytes="1">#{r}</pkg-ref>'
        for i, r in enumerate(refs)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><installer-gui-script minSpecVersion="1">'
        f'<options hostArchitectures="arm64,x86_64"/>{lines}</installer-gui-script>'
    ).encode()


def cpio_bytes(items: Sequence[CpioItem], fmt: str = "odc") -> bytes:
    buf = io.BytesIO()
    write_cpio(buf, items, "newc" if fmt == "newc" else "odc")
    return buf.getvalue()


def pbzx(raw: bytes, chunk: int = 4096) -> bytes:
    out = b"pbzx" + struct.pack(">Q", chunk)
    for i in range(0, len(raw), chunk):
        piece = raw[i : i + chunk]
        packed = lzma.compress(piece, format=lzma.FORMAT_XZ, preset=0)
        out += struct.pack(">QQ", len(piece), len(packed)) + packed
    return out


def wrap(raw: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(raw, mtime=0)
    if how == "bzip2":
        return bz2.compress(raw)
    if how == "pbzx":
        return pbzx(raw)
    return raw


def component(payload: bytes, *, info: bytes | None = None, scripts: bytes | None = None) -> list[Mem]:
    mems = [
        member("PackageInfo", info if info is not None else package_info(), "zlib"),
        Mem("Payload", payload),
    ]
    if scripts is not None:
        mems.append(Mem("Scripts", scripts))
    return mems


F, D, L = stat.S_IFREG | 0o644, stat.S_IFDIR | 0o755, stat.S_IFLNK | 0o755


def good_items(d: Draw) -> list[CpioItem]:
    items = [CpioItem(".", D), CpioItem("./a", D), CpioItem("./a/b.txt", F, b"hello " * d.integer(0, 50))]
    if d.boolean():
        items.append(CpioItem("./a/link", L, b"b.txt"))
    return items


def good_package(d: Draw) -> bytes:
    payload = wrap(
        cpio_bytes(good_items(d), d.choice(("odc", "newc"))), d.choice(("gzip", "pbzx", "bzip2", "cpio"))
    )
    if d.boolean():
        return xar(
            component(
                payload,
                scripts=wrap(cpio_bytes([CpioItem("./postinstall", F | 0o755, b"#!/bin/sh\n")]), "gzip"),
            )
        )
    inner = [Mem(f"c.pkg/{m.path}", m.data, m.style, m.raw) for m in component(payload)]
    return xar([member("Distribution", distribution(["c.pkg"]), "zlib"), *inner])


# --- recipes -------------------------------------------------------------------------------------


def toc_extents(d: Draw) -> bytes:
    mems = component(wrap(cpio_bytes(good_items(d)), "gzip"))
    target = d.choice(mems)
    value = d.choice((*HOSTILE_NUMBERS, "1000000000000"))
    setattr(target, d.choice(("offset", "length", "size")), value)
    return xar(mems)


def checksum_fields(d: Draw) -> bytes:
    mems = component(wrap(cpio_bytes(good_items(d)), "gzip"))
    offset = d.choice((*HOSTILE_NUMBERS, "0", "1", "400"))
    size = d.choice(("20", "16", "32", "0", *HOSTILE_NUMBERS[:4]))
    style = d.choice(("sha1", "md5", "sha256", "crc32", "", "SHA1"))
    return xar(mems, checksum=(offset, size), checksum_style=style, header_alg=d.integer(0, 5))


def header_fields(d: Draw) -> bytes:
    mems = component(wrap(cpio_bytes(good_items(d)), "gzip"))
    key = d.choice(("magic", "header_size", "version", "toc_length_compressed", "toc_length_uncompressed"))
    value = d.choice((0, 1, 27, 29, 4096, 65535, 2**32, 2**63, 2**64 - 1, 16 * 1024 * 1024 + 1))
    return xar(mems, header={key: value})


def truncated(d: Draw) -> bytes:
    data = good_package(d)
    return data[: d.integer(0, len(data) - 1)]


def mutated(d: Draw) -> bytes:
    data = bytearray(good_package(d))
    heap = min(len(data) - 1, 28 + struct.unpack(">Q", data[8:16])[0])
    for _ in range(d.integer(1, 8)):
        # Half the changes land in the heap: the TOC is zlib, and most changes there stop at inflate.
        where = d.integer(heap, len(data) - 1) if d.boolean() else d.integer(0, len(data) - 1)
        if where >= len(data):
            break
        what = d.choice(("flip", "set", "insert", "delete"))
        if what == "flip":
            data[where] ^= 1 << d.integer(0, 7)
        elif what == "set":
            data[where] = d.choice((0, 0xFF, 0x7F, 0x80, ord("9"), ord("<")))
        elif what == "insert":
            data[where:where] = d.blob(16)
        else:
            del data[where : where + d.integer(1, 16)]
    return bytes(data)


def _mutate(d: Draw, data: bytes, alphabet: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(d.integer(1, 6)):
        if not out:
            break
        where = d.integer(0, len(out) - 1)
        what = d.choice(("set", "insert", "delete"))
        if what == "set":
            out[where] = d.choice(alphabet)
        elif what == "insert":
            out[where:where] = bytes([d.choice(alphabet)]) * d.integer(1, 4)
        else:
            del out[where : where + d.integer(1, 8)]
    return bytes(out)


def mutated_toc(d: Draw) -> bytes:
    """Changes inside the TOC's XML, then a right TOC checksum: the parser sees every change."""
    mems = component(wrap(cpio_bytes(good_items(d)), d.choice(("gzip", "cpio"))))
    if d.boolean():
        return xar(mems, toc_text=lambda toc: _mutate(d, toc, b"<>/&;\"'=-0123456789 x\x00\xff"))
    return xar(mems, toc_text=lambda toc: _mutate_numbers(d, toc))


def _mutate_numbers(d: Draw, toc: bytes) -> bytes:
    """Change only digits (offsets, lengths, sizes, ids, dates): the XML stays well-formed."""
    out = bytearray(toc)
    for _ in range(d.integer(1, 4)):
        digits = [i for i, b in enumerate(out) if 0x30 <= b <= 0x39]
        if not digits:
            break
        where = d.choice(digits)
        what = d.choice(("set", "grow", "delete", "sign"))
        if what == "set":
            out[where] = d.choice(b"0123456789")
        elif what == "grow":
            out[where:where] = d.choice((b"9", b"99999999999", b"0", b"18446744073709551615"))
        elif what == "delete":
            del out[where]
        else:
            out[where:where] = d.choice((b"-", b"+", b" "))
    return bytes(out)


def mutated_cpio(d: Draw) -> bytes:
    """Changes inside the cpio stream, then compressed with right checksums: the cpio reader sees them."""
    raw = cpio_bytes(good_items(d), d.choice(("odc", "newc")))
    raw = _mutate(d, raw, b"0123456789abcdefx-/. \x00\xff")
    return xar(component(wrap(raw, d.choice(("gzip", "pbzx", "bzip2", "cpio")))))


def payload_streams(d: Draw) -> bytes:
    raw = cpio_bytes(good_items(d))
    how = d.choice(("gzip", "bzip2", "pbzx", "xz-member", "junk"))
    if how == "xz-member":
        mem = member("Payload", wrap(raw, "gzip"), "xz")
        if d.boolean():
            mem.data = mem.data[: d.integer(0, len(mem.data))]
            mem.size = d.choice(("1", "100000000", None))
        return xar([member("PackageInfo", package_info(), "zlib"), mem])
    if how == "junk":
        payload = d.choice((b"\x1f\x8b", b"BZh9", b"pbzx", b"070707", b"070701")) + d.blob(64)
    else:
        payload = wrap(raw, how)
        cut = d.integer(0, len(payload))
        payload = d.choice((payload[:cut], payload[:cut] + d.blob(32), payload + d.blob(32)))
        if how == "pbzx" and d.boolean():
            sizes = d.choice(((2**64 - 1, 10), (10, 2**64 - 1), (0, 0), (2**28, 2**28), (5, 5), (100, 3)))
            payload = payload[:12] + struct.pack(">QQ", *sizes) + payload[28:]
    return xar(component(payload))


def cpio_entries(d: Draw) -> bytes:
    pool: list[CpioItem] = [
        CpioItem("./../escape", F, b"x"),
        CpioItem("../../escape", F, b"x"),
        CpioItem("/abs/escape", F, b"x"),
        CpioItem("./a/../../escape", F, b"x"),
        CpioItem("./._b.txt", F, b"\0\5\26\7appledouble"),
        CpioItem("./a/._b.txt", F, b"\0\5\26\7"),
        CpioItem("./x", F, b"", nlink=2, ino=77),
        CpioItem("./x", L, b"target"),
        CpioItem("./x", L, b"/etc/passwd"),
        CpioItem("./x", D),
        CpioItem("./x", F, b"data", nlink=2, ino=77),
        CpioItem("./y", F, b"", nlink=2, ino=77),
        CpioItem("./x/inner", F, b"through"),
        CpioItem("./up", L, b"../../.."),
        CpioItem("./up/owned", F, b"x"),
        CpioItem("./abs", L, OUTSIDE.encode()),
        CpioItem("./abs/owned", F, b"x"),
        CpioItem("./dev", stat.S_IFCHR | 0o666),
        CpioItem("./fifo", stat.S_IFIFO | 0o644),
        CpioItem("./suid", F | 0o4000, b"#!/bin/sh\n"),
        CpioItem("./" + "/".join(["d"] * d.integer(1, 1500)), F, b"deep"),
        CpioItem("./" + "n" * d.integer(200, 300), F, b"long"),
        CpioItem("./.bootstrapper-1-1.tmp", D),
        CpioItem(".", stat.S_IFREG | 0o644, b"root"),
        CpioItem("./weird", 0o170000, b""),
        CpioItem("./empty-link", L, b""),
    ]
    items = [d.choice(pool) for _ in range(d.integer(1, 8))]
    fmt = d.choice(("odc", "newc"))
    raw = cpio_bytes(items, fmt)
    if d.boolean():
        raw = _corrupt_cpio_header(d, raw, fmt)
    return xar(component(wrap(raw, d.choice(("gzip", "cpio", "pbzx")))))


def duplicate_names(d: Draw) -> bytes:
    """One name given twice or more as different kinds: hard link, symlink, file, folder, and a path through it."""
    kinds = (
        CpioItem("./x", F, b"", nlink=2, ino=9),
        CpioItem("./x", F, b"data", nlink=2, ino=9),
        CpioItem("./x", F, b"plain"),
        CpioItem("./x", L, b"target"),
        CpioItem("./x", L, b"/"),
        CpioItem("./x", L, b".."),
        CpioItem("./x", D),
        CpioItem("./x/inner", F, b"through"),
        CpioItem("./y", F, b"", nlink=2, ino=9),
        CpioItem("./._x", F, b"\0\5\26\7"),
    )
    items = [d.choice(kinds) for _ in range(d.integer(2, 5))]
    return xar(component(wrap(cpio_bytes(items, d.choice(("odc", "newc"))), "cpio")))


def _corrupt_cpio_header(d: Draw, raw: bytes, fmt: str) -> bytes:
    """Overwrite one header field of the first entry with something `int()` would half-accept."""
    if fmt == "odc":
        start, width = d.choice(((6, 6), (12, 6), (18, 6), (36, 6), (59, 6), (65, 11)))
        value = d.choice((b"-00001", b" 0x1f", b"777777", b"77777777777", b"+1", b"  ", b"000000"))
    else:
        start, width = 6 + 8 * d.integer(0, 12), 8
        value = d.choice((b"-0000001", b"0x000010", b"ffffffff", b"7fffffff", b" 1", b"0000000g"))
    value = (value + b"0" * width)[:width] if len(value) < width else value[:width]
    return raw[:start] + value + raw[start + width :]


def xml_tricks(d: Draw) -> bytes:
    doctype = '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    bodies = (
        doctype.encode() + b"<pkg-info identifier='&b;'/>",
        ('<?xml version="1.0" encoding="UTF-16"?>' + doctype + "<pkg-info identifier='&b;'/>").encode(
            "utf-16"
        ),
        b'<!doctype x SYSTEM "file:///etc/passwd"><pkg-info identifier="x"/>',
        b'<pkg-info identifier="&#0;"/>',
        b'<pkg-info identifier="&undefined;"/>',
        b'<?xml version="1.0" encoding="x-no-such-codec"?><pkg-info identifier="x"/>',
        b'<?xml version="1.0" encoding="utf-32"?><pkg-info identifier="x"/>',
        b"<a>" * 20000 + b"</a>" * 20000,
        b"<pkg-info identifier='x' version='1'><payload numberOfFiles='" + b"9" * 5000 + b"'/></pkg-info>",
        b"<pkg-info identifier='x'><payload numberOfFiles='\xd9\xa1\xd9\xa2' installKBytes='1e9999'/></pkg-info>",
        b"<pkg-info identifier='x' install-location='../../../etc'/>",
        b"<pkg-info><allowed-os-versions><os-version min='"
        + b"9" * 5000
        + b"'/></allowed-os-versions></pkg-info>",
        b"<pkg-info><allowed-os-versions><os-version min='\xd9\xa1\xd9\xa2.x'/></allowed-os-versions></pkg-info>",
        b"<pkg-info identifier='x' install-location='relative'/>",
        b"\xef\xbb\xbf<pkg-info identifier='x'/>",
        b"<pkg-info identifier='x'/>\0",
        b"",
        d.blob(64),
    )
    body = d.choice(bodies)
    where = d.choice(("PackageInfo", "Distribution", "TOC"))
    payload = wrap(cpio_bytes(good_items(d)), "gzip")
    if where == "PackageInfo":
        return xar(component(payload, info=body))
    if where == "Distribution":
        dist = body.replace(b"pkg-info", b"installer-gui-script")
        if d.boolean():
            dist = distribution(d.choice((["missing.pkg"], ["c.pkg", "c.pkg"], ["%2e%2e/x"], ["c.pkg#"])))
        inner = [Mem(f"c.pkg/{m.path}", m.data, m.style, m.raw) for m in component(payload)]
        return xar([member("Distribution", dist, "zlib"), *inner])
    return xar(
        component(payload),
        toc_text=lambda toc: (
            body.replace(b"pkg-info", b"xar") if d.boolean() else toc.replace(b"<toc>", b"<toc>" + body[:200])
        ),
    )


def toc_tree(d: Draw) -> bytes:
    payload = wrap(cpio_bytes(good_items(d)), "gzip")
    depth = d.integer(1, 3000)
    nested = '<file id="n"><name>d</name><type>directory</type>' * depth + "</file>" * depth
    extras = (
        nested,
        '<file id="9"><name>..</name><type>file</type></file>',
        '<file id="9"><name enctype="base64">Li4=</name><type>file</type></file>',
        '<file id="9"><name enctype="base64">!!!</name><type>file</type></file>',
        '<file id="9"><name>PackageInfo</name><type>file</type></file>',
        '<file id="9"><name>m</name><mode>99</mode></file>',
        '<file id="9"><name>m</name><data><offset>0</offset><length>1</length>'
        '<encoding style="application/x-rar"/></data></file>',
        '<file id="9"><name>m</name><ea><name>x</name><offset>18446744073709551615</offset><length>1</length></ea></file>',
        '<file id="9"><name>Payload</name><type>directory</type></file>',
    )
    extra = d.choice(extras)
    return xar(component(payload), extra_toc=extra)


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + body


def rsa_certificate(modulus: int, exponent: int, cn: bytes) -> bytes:
    """A minimal X.509 certificate shape with this RSA key and a BMPString common name `cn`."""
    name = _der(0x30, _der(0x31, _der(0x30, _der(0x06, bytes.fromhex("550403")) + _der(0x1E, cn))))
    rsa = _der(0x30, _der(0x06, bytes.fromhex("2a864886f70d010101")))
    key = _der(
        0x30,
        _der(0x02, modulus.to_bytes((modulus.bit_length() + 8) // 8, "big"))
        + _der(0x02, exponent.to_bytes((exponent.bit_length() + 8) // 8, "big")),
    )
    spki = _der(0x30, rsa + _der(0x03, b"\0" + key))
    tbs = _der(0x30, _der(0x02, b"\1") + rsa + name + _der(0x30, b"") + name + spki)
    return _der(0x30, tbs)


def signatures(d: Draw) -> bytes:
    import base64

    payload = wrap(cpio_bytes(good_items(d)), "gzip")
    bits = d.choice((1, 2, 512, 2048, 8192, 9000))
    modulus = (1 << (bits - 1)) | 1 if bits > 1 else d.choice((0, 1))
    exponent = d.choice((3, 65537, (1 << 4000) + 1, 0))
    cert = d.choice(
        (
            rsa_certificate(modulus, exponent, d.choice((b"\0A\0B", b"\0A\0", b"odd"))),
            rsa_certificate(modulus, exponent, b"ok")[: d.integer(0, 60)],
            b"\x30\x00",
            b"\x30\x80",
            b"\x30\x84\xff\xff\xff\xff",
            d.blob(40),
        )
    )
    size = d.choice(("256", "0", str(max(1, bits // 8)), "18446744073709551615", "2000000"))
    sig = (
        f'<signature style="RSA"><offset>20</offset><size>{size}</size><KeyInfo><X509Data><X509Certificate>'
        f"{base64.b64encode(cert).decode()}</X509Certificate></X509Data></KeyInfo></signature>"
    )
    return xar(component(payload), extra_toc=sig)


RECIPES: dict[str, Callable[[Draw], bytes]] = {
    "toc-extents": toc_extents,
    "checksum": checksum_fields,
    "header": header_fields,
    "truncated": truncated,
    "mutated": mutated,
    "mutated-toc": mutated_toc,
    "mutated-cpio": mutated_cpio,
    "payload-stream": payload_streams,
    "cpio-entries": cpio_entries,
    "duplicate-names": duplicate_names,
    "xml": xml_tricks,
    "toc-tree": toc_tree,
    "signature": signatures,
}


def make_case(d: Draw) -> Case:
    name = d.choice(sorted(RECIPES))
    return Case(name, RECIPES[name](d))


def hostile_packages() -> st.SearchStrategy[Case]:
    """Cases from every recipe; hypothesis shrinks each draw, so a failure reduces to a small case."""

    @st.composite
    def build(draw: st.DrawFn) -> Case:
        return make_case(_HypothesisDraw(draw))

    return build()


def random_cases(seed: int, count: int) -> list[Case]:
    rng = random.Random(seed)  # noqa: S311 (reproducible cases, not secrets)
    return [make_case(RandomDraw(rng)) for _ in range(count)]


# --- running one case through every reader -------------------------------------------------------


def exercise(path: Path, root: Path) -> list[str]:
    """Read, summarize, list, scan and extract the package at `path` (extraction under `root`).

    Returns what each step said: "ok" or the PackageError's message. Extraction runs even when the
    scan refused, so that its own defences are exercised too. Any other exception propagates.
    """
    said: list[str] = []

    def step(fn: Callable[[], object]) -> None:
        try:
            fn()
        except PackageError as exc:
            said.append(str(exc))
        else:
            said.append("ok")

    def info() -> None:
        facts = read_package(path)
        facts_text(facts)
        json.dumps(facts_json(facts))

    step(info)
    step(lambda: list(payload_files(path)))
    try:
        pkg = FlatPackage(path)
    except PackageError as exc:
        return [*said, str(exc)]
    with pkg:
        step(pkg.install_order)
        for n, comp in enumerate(pkg.components):
            for which, present in (("Payload", comp.has_payload), ("Scripts", comp.has_scripts)):
                if present:
                    step(partial(_scan, pkg, comp, which))
                    step(partial(_extract, pkg, comp, which, root / f"{n}-{which}"))
    return said


def _scan(pkg: FlatPackage, comp: Component, which: str) -> None:
    with pkg.open_payload(comp, which) as reader:
        scan(reader)


def _extract(pkg: FlatPackage, comp: Component, which: str, root: Path) -> None:
    location = comp.info.effective_install_location
    location_parts(location, pkg.error)
    with pkg.open_payload(comp, which) as reader:
        extract(reader, root, location=location)


def tree(path: Path) -> set[str]:
    """Every path under `path` (symlinks not followed), to show nothing appeared outside a root."""
    found = set()
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(folder, name), path))
    return found


# --- the committed corpus: packages that crashed the reader, made again from their recipes -------

#: A fixed creation time, so that the recipes below give the same TOC every time.
CREATED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
INFO = b'<pkg-info identifier="com.example.hostile" version="1" install-location="/"/>'


def checksum_offset_overflow_pkg(dest: Path) -> Path:
    """A component package whose TOC checksum sits at heap offset 2^64-1 (`os.pread` overflowed)."""
    build_component_pkg(dest, "com.example.hostile", "1", {"a.txt": b"hello\n"}, created=CREATED)
    data = dest.read_bytes()
    (packed_len,) = struct.unpack(">Q", data[8:16])
    toc = zlib.decompress(data[28 : 28 + packed_len])
    hostile = toc.replace(b"<offset>0</offset>", b"<offset>18446744073709551615</offset>", 1)
    assert hostile != toc
    packed = zlib.compress(hostile, 9)
    header = struct.pack(">4sHHQQI", b"xar!", 28, 1, len(packed), len(hostile), 1)
    dest.write_bytes(header + packed + data[28 + packed_len :])
    return dest


def hardlink_then_symlink_pkg(dest: Path) -> Path:
    """A payload with a hard link `./x` whose data never comes, then a symlink `./x` (ELOOP once)."""
    items = [
        CpioItem(".", D),
        CpioItem("./x", F, b"", nlink=2, ino=7),
        CpioItem("./x", L, b"target"),
    ]
    payload = gzip.compress(cpio_bytes(items), mtime=0)
    return write_xar(
        dest, [XarSource("PackageInfo", INFO, "zlib"), XarSource("Payload", payload)], created=CREATED
    )


#: File name in tests/data/pkgs/hostile → the recipe that makes it.
CORPUS: dict[str, Callable[[Path], Path]] = {
    "toc-checksum-offset-2e64.pkg": checksum_offset_overflow_pkg,
    "hardlink-then-symlink.pkg": hardlink_then_symlink_pkg,
}


def toc_and_heap(path: Path) -> tuple[bytes, bytes]:
    """A xar's inflated TOC and its heap: equal for equal recipes whatever zlib build compressed them."""
    data = path.read_bytes()
    (packed_len,) = struct.unpack(">Q", data[8:16])
    return zlib.decompress(data[28 : 28 + packed_len]), data[28 + packed_len :]
