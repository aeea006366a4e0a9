"""Hostile and broken packages: each attack or fault is refused with one clear PackageError."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import struct
import time
import zlib
from pathlib import Path

import pytest

from bootstrapper.commands.pkg import payload_files
from bootstrapper.errors import PackageError
from bootstrapper.flatpkg import FlatPackage, der, read_package
from bootstrapper.flatpkg.cpio import TRAILER, CpioReader, odc_header
from bootstrapper.flatpkg.extract import extract, location_parts, scan
from bootstrapper.flatpkg.xar import XarArchive
from tests.support import hostile_pkgs
from tests.support.pkgwriter import CpioItem, XarSource, build_component_pkg, write_cpio, write_xar

INFO = b'<pkg-info identifier="com.example.evil" version="1" install-location="/"/>'


def problem(msg: str) -> PackageError:
    return PackageError(msg)


def good(tmp_path: Path) -> Path:
    return build_component_pkg(tmp_path / "good.pkg", "com.example.good", "1", {"a/b.txt": b"payload " * 100})


def raw_xar(path: Path, toc: bytes, heap: bytes = b"", *, claim: int | None = None) -> Path:
    """A xar with a hand-written TOC; the TOC checksum is right unless the test breaks it."""
    packed = zlib.compress(toc)
    path.write_bytes(
        struct.pack(">4sHHQQI", b"xar!", 28, 1, len(packed), claim if claim is not None else len(toc), 1)
        + packed
        + hashlib.sha1(packed).digest()  # noqa: S324 (the xar format's checksum)
        + heap
    )
    return path


def toc(files: str) -> bytes:
    return (
        b'<?xml version="1.0"?><xar><toc><checksum style="sha1"><offset>0</offset><size>20</size></checksum>'
        + files.encode()
        + b"</toc></xar>"
    )


def payload_pkg(tmp_path: Path, items: list[CpioItem], fmt: str = "odc") -> Path:
    buf = io.BytesIO()
    write_cpio(buf, items, fmt)  # type: ignore[arg-type]
    return write_xar(
        tmp_path / "evil.pkg",
        [XarSource("PackageInfo", INFO, "zlib"), XarSource("Payload", gzip.compress(buf.getvalue()))],
    )


def install(path: Path, root: Path) -> None:
    with FlatPackage(path) as pkg:
        comp = pkg.components[0]
        with pkg.open_payload(comp) as reader:
            scan(reader)
        with pkg.open_payload(comp) as reader:
            extract(reader, root, location=comp.info.effective_install_location)


# --- the container -------------------------------------------------------------------------------


def test_wrong_magic_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "zip.pkg"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(PackageError, match=r"zip\.pkg: not a xar archive \(wrong magic.*got 504b0304"):
        read_package(path)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.pkg").write_bytes(b"")
    with pytest.raises(PackageError, match=r"empty\.pkg: not a xar archive"):
        read_package(tmp_path / "empty.pkg")


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match=r"nope\.pkg: cannot open"):
        read_package(tmp_path / "nope.pkg")


@pytest.mark.parametrize("keep", [10, 28, 60, -30])
def test_truncated_file_is_refused(tmp_path: Path, keep: int) -> None:
    data = good(tmp_path).read_bytes()
    cut = tmp_path / "cut.pkg"
    cut.write_bytes(data[:keep])
    with pytest.raises(PackageError, match=r"cut\.pkg: truncated"):
        read_package(cut)


def test_huge_claimed_toc_size_is_refused(tmp_path: Path) -> None:
    path = raw_xar(tmp_path / "huge.pkg", toc(""), claim=10**12)
    with pytest.raises(PackageError, match=r"huge\.pkg: the TOC claims 1000000000000 bytes uncompressed"):
        read_package(path)


def test_toc_that_inflates_past_its_claim_is_refused(tmp_path: Path) -> None:
    body = toc("<!-- " + "x" * 100_000 + " -->")
    path = raw_xar(tmp_path / "bomb.pkg", body, claim=1000)
    with pytest.raises(PackageError, match="inflates to more than the 1000 bytes"):
        read_package(path)


def test_toc_checksum_mismatch_is_refused(tmp_path: Path) -> None:
    path = good(tmp_path)
    data = bytearray(path.read_bytes())
    heap = 28 + struct.unpack(">Q", data[8:16])[0]
    data[heap] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(PackageError, match=r"good\.pkg: TOC checksum mismatch \(sha1\)"):
        read_package(path)


@pytest.mark.parametrize("style", ["md5", "sha256", "sha512"])
def test_toc_checksum_by_the_algorithm_the_toc_names(tmp_path: Path, style: str) -> None:
    size = hashlib.new(style).digest_size
    body = (
        f'<?xml version="1.0"?><xar><toc><checksum style="{style}"><offset>0</offset><size>{size}</size>'
        "</checksum></toc></xar>"
    ).encode()
    packed = zlib.compress(body)
    header = struct.pack(">4sHHQQI", b"xar!", 28, 1, len(packed), len(body), 3)
    path = tmp_path / "alg.xar"
    path.write_bytes(header + packed + hashlib.new(style, packed).digest())
    with XarArchive(path) as x:
        assert x.toc_checksum is not None and x.toc_checksum.style == style
    path.write_bytes(header + packed + bytes(size))
    with pytest.raises(PackageError, match=f"TOC checksum mismatch \\({style}\\)"):
        XarArchive(path)


def test_unknown_checksum_algorithm_is_refused(tmp_path: Path) -> None:
    body = toc("").replace(b'style="sha1"', b'style="crc32"')
    with pytest.raises(PackageError, match="unsupported checksum algorithm 'crc32'"):
        read_package(raw_xar(tmp_path / "c.pkg", body))


def test_entity_expansion_in_the_toc_is_refused(tmp_path: Path) -> None:
    body = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]><xar/>'
    with pytest.raises(PackageError, match="DOCTYPE or ENTITY declaration is refused"):
        read_package(raw_xar(tmp_path / "laughs.pkg", body))


def test_malformed_toc_xml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="TOC: not well-formed XML"):
        read_package(raw_xar(tmp_path / "bad.pkg", b"<xar><toc>"))


@pytest.mark.parametrize("name", ["..", ".", "a/b", ""])
def test_unsafe_member_name_is_refused(tmp_path: Path, name: str) -> None:
    body = toc(f'<file id="1"><name>{name}</name><type>file</type></file>')
    with pytest.raises(PackageError, match="unsafe member name"):
        read_package(raw_xar(tmp_path / "n.pkg", body))


def test_extent_beyond_the_end_of_file_is_refused(tmp_path: Path) -> None:
    body = toc(
        '<file id="1"><name>PackageInfo</name><type>file</type><data><offset>20</offset>'
        "<length>999999</length><size>999999</size></data></file>"
    )
    with pytest.raises(PackageError, match=r"truncated: PackageInfo needs heap bytes 20\.\.1000019"):
        read_package(raw_xar(tmp_path / "t.pkg", body, b"x" * 10))


def test_member_checksum_mismatch_is_refused(tmp_path: Path) -> None:
    path = good(tmp_path)
    with XarArchive(path) as x:
        member = x.member("Payload")
        assert member is not None and member.data is not None
        where = x.heap_start + member.data.offset + member.data.length - 12  # inside the gzip trailer's CRC
    data = bytearray(path.read_bytes())
    data[where] ^= 0x01
    path.write_bytes(bytes(data))
    with (
        FlatPackage(path) as pkg,
        pytest.raises(PackageError, match="checksum mismatch in Payload: archived sha1"),
    ):
        pkg.verify_member(pkg.components[0], "Payload")


def test_member_that_decodes_past_its_declared_size_is_refused(tmp_path: Path) -> None:
    bomb = zlib.compress(b"\0" * 5_000_000)
    body = toc(
        f'<file id="1"><name>PackageInfo</name><type>file</type><data><offset>20</offset>'
        f'<length>{len(bomb)}</length><size>100</size><encoding style="application/x-gzip"/></data></file>'
    )
    path = raw_xar(tmp_path / "z.pkg", body, bomb)
    with pytest.raises(PackageError, match="PackageInfo decodes to more than its declared 100 bytes"):
        read_package(path)


def test_corrupt_zlib_member_is_refused(tmp_path: Path) -> None:
    junk = b"\x78\xda" + b"\xff" * 40
    body = toc(
        f'<file id="1"><name>PackageInfo</name><type>file</type><data><offset>20</offset>'
        f'<length>{len(junk)}</length><encoding style="application/x-gzip"/></data></file>'
    )
    with pytest.raises(PackageError, match="PackageInfo is corrupt"):
        read_package(raw_xar(tmp_path / "z.pkg", body, junk))


def test_package_info_without_identifier_is_refused(tmp_path: Path) -> None:
    path = write_xar(tmp_path / "noid.pkg", [XarSource("PackageInfo", b'<pkg-info version="1"/>')])
    with pytest.raises(PackageError, match="PackageInfo: <pkg-info> has no identifier"):
        read_package(path)


# --- the payload ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../escape.txt", "./a/../../escape.txt", "a/../../escape.txt"])
def test_path_traversal_entry_is_refused(tmp_path: Path, name: str) -> None:
    path = payload_pkg(
        tmp_path, [CpioItem("./ok.txt", stat.S_IFREG | 0o644, b"ok"), CpioItem(name, 0o100644, b"x")]
    )
    root = tmp_path / "root"
    with pytest.raises(
        PackageError, match=r"evil\.pkg: Payload: entry .* contains '\.\.' \(path traversal refused\)"
    ):
        install(path, root)
    assert not (tmp_path / "escape.txt").exists()
    assert not (root / "ok.txt").exists(), "nothing is written before the whole payload is checked"


def test_absolute_path_entry_is_refused(tmp_path: Path) -> None:
    path = payload_pkg(tmp_path, [CpioItem("/etc/evil", stat.S_IFREG | 0o644, b"x")])
    with pytest.raises(PackageError, match="has an absolute path"):
        install(path, tmp_path / "root")


def test_symlink_pointing_out_of_the_root_is_refused(tmp_path: Path) -> None:
    path = payload_pkg(tmp_path, [CpioItem("./a/link", stat.S_IFLNK | 0o755, b"../../../outside")])
    with pytest.raises(PackageError, match=r"symlink 'a/link' -> '../../../outside' points outside"):
        install(path, tmp_path / "root")


def test_symlink_climbing_out_of_the_install_location_but_not_the_volume_is_kept(tmp_path: Path) -> None:
    buf = io.BytesIO()
    write_cpio(buf, [CpioItem("./bin/tool", stat.S_IFLNK | 0o755, b"../../../usr/share/tool")])
    buf.seek(0)
    root = tmp_path / "root"
    extract(CpioReader(buf, problem), root, location="/opt/x")
    assert os.readlink(root / "opt/x/bin/tool") == "../../../usr/share/tool"


def test_writing_through_a_payload_symlink_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    items = [
        CpioItem("./etc", stat.S_IFLNK | 0o755, str(outside).encode()),
        CpioItem("./etc/passwd", stat.S_IFREG | 0o644, b"owned"),
    ]
    path = payload_pkg(tmp_path, items)
    with pytest.raises(PackageError, match="would be written through the symlink 'etc'"):
        install(path, tmp_path / "root")
    # And without the scan, extraction itself never enters a symlink it made.
    buf = io.BytesIO()
    write_cpio(buf, items)
    buf.seek(0)
    with pytest.raises(PackageError, match="would be written through the symlink 'etc'"):
        extract(CpioReader(buf, problem), tmp_path / "root2")
    assert list(outside.iterdir()) == []


def test_a_symlink_planted_at_a_destination_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(victim, root / "file.txt")
    install(payload_pkg(tmp_path, [CpioItem("./file.txt", stat.S_IFREG | 0o644, b"new")]), root)
    assert victim.read_text() == "precious"
    assert not (root / "file.txt").is_symlink() and (root / "file.txt").read_bytes() == b"new"


@pytest.mark.parametrize(
    ("mode", "what"),
    [
        (stat.S_IFCHR | 0o666, "a character device"),
        (stat.S_IFBLK | 0o660, "a block device"),
        (stat.S_IFIFO | 0o644, "a FIFO"),
    ],
)
def test_device_and_special_files_are_refused(tmp_path: Path, mode: int, what: str) -> None:
    path = payload_pkg(tmp_path, [CpioItem("./dev/thing", mode)])
    with pytest.raises(PackageError, match=f"entry './dev/thing' is {what}"):
        install(path, tmp_path / "root")


def test_setuid_and_setgid_bits_are_stripped(tmp_path: Path) -> None:
    buf = io.BytesIO()
    write_cpio(
        buf,
        [
            CpioItem("./bin", stat.S_IFDIR | 0o2755),
            CpioItem("./bin/su", stat.S_IFREG | 0o4755, b"#!/bin/sh\n"),
            CpioItem("./bin/sg", stat.S_IFREG | 0o2711, b"#!/bin/sh\n"),
        ],
    )
    buf.seek(0)
    result = extract(CpioReader(buf, problem), tmp_path)
    assert stat.S_IMODE((tmp_path / "bin/su").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "bin/sg").stat().st_mode) == 0o711
    assert stat.S_IMODE((tmp_path / "bin").stat().st_mode) == 0o755
    assert result.stripped == ("./bin", "./bin/su", "./bin/sg")


def test_install_location_traversal_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match=r"install-location '/opt/\.\./\.\./etc' contains '\.\.'"):
        location_parts("/opt/../../etc", problem)
    with pytest.raises(PackageError, match="is not an absolute path"):
        location_parts("opt", problem)


def test_unknown_payload_format_is_refused(tmp_path: Path) -> None:
    path = write_xar(
        tmp_path / "aa.pkg", [XarSource("PackageInfo", INFO), XarSource("Payload", b"AA01" + b"\0" * 64)]
    )
    with FlatPackage(path) as pkg:
        assert pkg.components[0].payload_format == "unknown"
        with pytest.raises(
            PackageError, match=r"aa\.pkg: Payload: unknown payload format \(starts 414130310000\)"
        ):
            pkg.open_payload(pkg.components[0]).__enter__()


def test_truncated_gzip_payload_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    write_cpio(buf, [CpioItem("./big", stat.S_IFREG | 0o644, os.urandom(50_000))])
    cut = gzip.compress(buf.getvalue())[:20_000]
    path = write_xar(tmp_path / "cut.pkg", [XarSource("PackageInfo", INFO), XarSource("Payload", cut)])
    with pytest.raises(PackageError, match=r"cut\.pkg: Payload: (corrupt gzip payload|truncated cpio)"):
        install(path, tmp_path / "root")


def test_cpio_without_trailer_is_refused() -> None:
    buf = io.BytesIO()
    write_cpio(buf, [CpioItem("./a", stat.S_IFREG | 0o644, b"abc")])
    data = buf.getvalue()
    trailer = odc_header(TRAILER, mode=0, size=0)
    assert data.endswith(trailer)
    reader = CpioReader(io.BytesIO(data[: -len(trailer)]), problem)
    with pytest.raises(PackageError, match="no TRAILER"):
        list(reader)


def test_cpio_with_a_huge_name_is_refused() -> None:
    bad = b"070707" + b"0" * 53 + b"777777" + b"0" * 11
    with pytest.raises(PackageError, match="entry name of 262143 bytes"):
        list(CpioReader(io.BytesIO(bad), problem))


def test_pbzx_chunk_claiming_a_huge_size_is_refused(tmp_path: Path) -> None:
    data = b"pbzx" + struct.pack(">Q", 1 << 24) + struct.pack(">QQ", 1 << 40, 100) + b"\0" * 100
    path = write_xar(tmp_path / "p.pkg", [XarSource("PackageInfo", INFO), XarSource("Payload", data)])
    with pytest.raises(PackageError, match="corrupt pbzx payload: a chunk claims 1099511627776 bytes"):
        install(path, tmp_path / "root")


def test_truncated_pbzx_chunk_is_refused(tmp_path: Path) -> None:
    import lzma

    buf = io.BytesIO()
    write_cpio(buf, [CpioItem("./a", stat.S_IFREG | 0o644, os.urandom(3000) * 4)])
    xz = lzma.compress(buf.getvalue(), format=lzma.FORMAT_XZ)
    size = len(buf.getvalue())
    data = b"pbzx" + struct.pack(">Q", 1 << 24) + struct.pack(">QQ", size, len(xz)) + xz[:-2000]
    path = write_xar(tmp_path / "p.pkg", [XarSource("PackageInfo", INFO), XarSource("Payload", data)])
    with pytest.raises(PackageError, match=r"p\.pkg: Payload: (truncated|corrupt) pbzx payload"):
        install(path, tmp_path / "root")


# --- bytes that once raised something other than PackageError -------------------------------------


@pytest.mark.parametrize("value", ["²", "١٢", "-1", "0x10", "1e3", "9" * 5000, "18446744073709551615" + "0"])
def test_a_toc_number_that_is_not_plain_ascii_digits_is_refused(tmp_path: Path, value: str) -> None:
    body = toc(
        f'<file id="1"><name>PackageInfo</name><type>file</type><data><offset>{value}</offset>'
        "<length>1</length></data></file>"
    )
    with pytest.raises(PackageError, match=r"PackageInfo: <offset> is .*expected a non-negative integer"):
        read_package(raw_xar(tmp_path / "n.pkg", body, b"x"))


def test_a_huge_compressed_toc_claim_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "c.pkg"
    path.write_bytes(struct.pack(">4sHHQQI", b"xar!", 28, 1, 2**64 - 1, 100, 1))
    with pytest.raises(PackageError, match="the TOC claims 18446744073709551615 bytes compressed"):
        read_package(path)


def test_folders_nested_thousands_deep_in_the_toc_are_one_error(tmp_path: Path) -> None:
    depth = 5000
    nested = '<file id="d"><name>d</name><type>directory</type>' * depth + "</file>" * depth
    with pytest.raises(PackageError, match="the TOC nests folders more than 64 deep"):
        read_package(raw_xar(tmp_path / "deep.pkg", toc(nested)))


def test_toc_members_keep_their_toc_order(tmp_path: Path) -> None:
    body = toc(
        '<file id="1"><name>a</name><type>directory</type><file id="2"><name>x</name></file></file>'
        '<file id="3"><name>b</name><type>directory</type><file id="4"><name>y</name></file></file>'
    )
    with XarArchive(raw_xar(tmp_path / "o.pkg", body)) as x:
        assert [m.path for m in x.members] == ["a", "a/x", "b", "b/y"]


def test_a_signature_claiming_more_than_a_megabyte_is_refused(tmp_path: Path) -> None:
    sig = '<signature style="RSA"><offset>20</offset><size>2000000</size></signature>'
    with pytest.raises(PackageError, match="<signature> claims 2000000 bytes"):
        read_package(raw_xar(tmp_path / "s.pkg", toc(sig)))


@pytest.mark.parametrize(
    "body",
    [
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "aa">]><pkg-info identifier="&a;"/>'.encode(
            "utf-16"
        ),
        b'<!doctype x SYSTEM "file:///etc/passwd"><pkg-info identifier="x"/>',
    ],
)
def test_a_dtd_in_any_encoding_is_refused(tmp_path: Path, body: bytes) -> None:
    path = write_xar(tmp_path / "dtd.pkg", [XarSource("PackageInfo", body)])
    with pytest.raises(
        PackageError, match="PackageInfo: XML with a DOCTYPE or ENTITY declaration is refused"
    ):
        read_package(path)


@pytest.mark.parametrize("encoding", ["x-no-such-codec", "utf-32"])
def test_xml_in_an_unknown_or_unsupported_encoding_is_refused(tmp_path: Path, encoding: str) -> None:
    body = f'<?xml version="1.0" encoding="{encoding}"?><pkg-info identifier="x"/>'.encode()
    path = write_xar(tmp_path / "enc.pkg", [XarSource("PackageInfo", body)])
    with pytest.raises(PackageError, match="PackageInfo: unreadable XML"):
        read_package(path)


@pytest.mark.parametrize(
    ("fmt", "field", "value"),
    [("odc", (65, 11), b"-0000000001"), ("odc", (6, 6), b" 0x1f "), ("newc", (6 + 6 * 8, 8), b"-0000001")],
)
def test_a_cpio_header_field_with_a_sign_or_prefix_is_refused(
    fmt: str, field: tuple[int, int], value: bytes
) -> None:
    buf = io.BytesIO()
    write_cpio(buf, [CpioItem("./a", stat.S_IFREG | 0o644, b"abc")], fmt)  # type: ignore[arg-type]
    data = buf.getvalue()
    start, width = field
    assert len(value) == width
    bad = data[:start] + value + data[start + width :]
    with pytest.raises(PackageError, match=r"corrupt cpio archive: a header field is not (octal|hex)"):
        list(CpioReader(io.BytesIO(bad), problem))


def test_a_payload_name_nested_past_the_limit_is_refused_by_scan_and_extract(tmp_path: Path) -> None:
    name = "./" + "/".join(["d"] * 1500)
    path = payload_pkg(tmp_path, [CpioItem(name, stat.S_IFREG | 0o644, b"deep")])
    with pytest.raises(PackageError, match="nests 1500 folders deep; the limit is 256"):
        install(path, tmp_path / "root")
    buf = io.BytesIO()
    write_cpio(buf, [CpioItem(name, stat.S_IFREG | 0o644, b"deep")])
    buf.seek(0)
    with pytest.raises(PackageError, match="nests 1500 folders deep"):
        extract(CpioReader(buf, problem), tmp_path / "root2")


def test_a_255_byte_name_extracts(tmp_path: Path) -> None:
    """The temporary name beside it is short, so the longest name a folder allows still fits."""
    name = "n" * 255
    buf = io.BytesIO()
    write_cpio(buf, [CpioItem(f"./{name}", stat.S_IFREG | 0o644, b"long")])
    buf.seek(0)
    extract(CpioReader(buf, problem), tmp_path)
    assert (tmp_path / name).read_bytes() == b"long"


def test_an_entry_named_like_a_temporary_file_does_not_break_extraction(tmp_path: Path) -> None:
    items = [
        CpioItem(f"./.bootstrapper-{os.getpid()}-1.tmp", stat.S_IFLNK | 0o755, b"elsewhere"),
        CpioItem("./a", stat.S_IFLNK | 0o755, b"b"),
        CpioItem("./b", stat.S_IFREG | 0o644, b"data"),
    ]
    buf = io.BytesIO()
    write_cpio(buf, items)
    buf.seek(0)
    extract(CpioReader(buf, problem), tmp_path)
    assert os.readlink(tmp_path / "a") == "b" and (tmp_path / "b").read_bytes() == b"data"


def test_a_file_system_error_from_an_entry_is_that_entry_s_package_error(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a").mkdir()
    (root / "a" / "full").mkdir()
    (root / "a" / "full" / "keep").write_text("x")
    buf = io.BytesIO()
    write_cpio(buf, [CpioItem("./a/full", stat.S_IFREG | 0o644, b"file over a folder")])
    buf.seek(0)
    with pytest.raises(PackageError, match=r"cannot place .*a/full: Is a directory"):
        extract(CpioReader(buf, problem), root)


def test_a_planted_folder_symlink_leading_out_of_the_root_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "etc")
    buf = io.BytesIO()
    write_cpio(buf, [CpioItem("./etc/passwd", stat.S_IFREG | 0o644, b"owned")])
    buf.seek(0)
    with pytest.raises(PackageError, match="'etc' is a symlink that leads outside the install root"):
        extract(CpioReader(buf, problem), root)
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    "items",
    [
        # hard link waiting for its data, then a symlink of the same name
        [CpioItem("./x", 0o100644, b"", nlink=2, ino=7), CpioItem("./x", stat.S_IFLNK | 0o755, b"t")],
        # hard link source replaced by a symlink before the second link arrives
        [
            CpioItem("./x", 0o100644, b"data", nlink=2, ino=7),
            CpioItem("./x", stat.S_IFLNK | 0o755, b"t"),
            CpioItem("./y", 0o100644, b"", nlink=2, ino=7),
        ],
        # a link to itself
        [CpioItem("./x", 0o100644, b"data", nlink=2, ino=7), CpioItem("./x", 0o100644, b"", nlink=2, ino=7)],
    ],
)
def test_hard_links_and_later_entries_of_the_same_name_never_follow_a_symlink(
    tmp_path: Path, items: list[CpioItem]
) -> None:
    buf = io.BytesIO()
    write_cpio(buf, items)
    buf.seek(0)
    root = tmp_path / "root"
    extract(CpioReader(buf, problem), root)
    assert not (tmp_path / "t").exists()
    if items[1].mode == stat.S_IFLNK | 0o755:
        assert os.readlink(root / "x") == "t"
    for name in os.listdir(root):
        assert not name.endswith(".tmp")


def test_appledouble_members_are_not_installed_but_are_listed(tmp_path: Path) -> None:
    items = [
        CpioItem(".", stat.S_IFDIR | 0o755),
        CpioItem("./a.txt", stat.S_IFREG | 0o644, b"a"),
        CpioItem("./._a.txt", stat.S_IFREG | 0o644, b"\0\5\26\7 resource fork"),
        CpioItem("./._dir", stat.S_IFDIR | 0o755),
    ]
    path = payload_pkg(tmp_path, items)
    root = tmp_path / "root"
    with FlatPackage(path) as pkg, pkg.open_payload(pkg.components[0]) as reader:
        result = extract(reader, root)
    assert sorted(os.listdir(root)) == ["._dir", "a.txt"]
    assert result.skipped == 1 and result.files == 1
    assert "./._a.txt" in list(payload_files(path))


@pytest.mark.parametrize("raw", [b"\x30\x00", b"\x30\x02\x30\x00", b"\x30\x84\xff\xff\xff\xff", b""])
def test_a_malformed_certificate_is_a_der_error(raw: bytes) -> None:
    with pytest.raises(der.DERError):
        der.parse_certificate(raw)


def test_an_odd_length_bmpstring_name_still_reads() -> None:
    cert = der.parse_certificate(hostile_pkgs.rsa_certificate((1 << 2047) | 1, 65537, b"\0A\0"))
    assert cert.common_name.startswith("A")


def test_an_absurd_rsa_key_is_not_raised_to_its_power() -> None:
    """A 16384-bit exponent and modulus would take ~10 s in `pow()`: such keys simply do not match."""
    big = (1 << 16383) | 1
    for modulus, exponent in ((big, 65537), ((1 << 2047) | 1, big), (0, 3), (1, 3)):
        cert = der.parse_certificate(hostile_pkgs.rsa_certificate(modulus, exponent, b"\0A"))
        started = time.monotonic()
        assert (
            der.rsa_pkcs1_verify(cert, b"\1" * max(1, (modulus.bit_length() + 7) // 8), b"\0" * 20) is False
        )
        assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("minimum", ["9" * 5000, "١٢.٣", "14.x", "1.2.3.4.5.6.7"])
def test_a_minimum_macos_that_is_not_a_version_is_refused(tmp_path: Path, minimum: str) -> None:
    """The installer compares its numbers: 5000 digits would be a ValueError there, not a refusal."""
    dist = (
        '<installer-gui-script minSpecVersion="1"><allowed-os-versions>'
        f'<os-version min="{minimum}"/></allowed-os-versions></installer-gui-script>'
    ).encode()
    path = write_xar(tmp_path / "os.pkg", [XarSource("Distribution", dist)])
    with pytest.raises(PackageError, match=r"Distribution: <os-version min=.*> is not a macOS version"):
        read_package(path)


def test_a_plain_minimum_macos_is_kept(tmp_path: Path) -> None:
    dist = (
        b'<installer-gui-script minSpecVersion="1"><allowed-os-versions><os-version min=" 10.13.6 "/>'
        b"</allowed-os-versions></installer-gui-script>"
    )
    comp = build_component_pkg(tmp_path / "c.pkg", "com.example.c", "1", {"a": b""})
    with FlatPackage(comp) as pkg:
        info = pkg.xar.read(pkg.xar.member("PackageInfo"))  # type: ignore[arg-type]
    path = write_xar(
        tmp_path / "os.pkg", [XarSource("Distribution", dist), XarSource("c.pkg/PackageInfo", info)]
    )
    facts = read_package(path)
    assert facts.distribution is not None and facts.distribution.minimum_os == "10.13.6"
