"""What the writer writes, the reader reads: components, product archives, every payload format."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import os
import stat
import tracemalloc
from pathlib import Path

import pytest

from bootstrapper.errors import PackageError
from bootstrapper.flatpkg import FlatPackage, read_package
from bootstrapper.flatpkg.cpio import CpioReader, PbzxReader
from bootstrapper.flatpkg.extract import extract, scan
from tests.support.pkgwriter import (
    CpioItem,
    PayloadFile,
    XarSource,
    build_component_pkg,
    build_product_archive,
    write_cpio,
    write_pbzx,
    write_xar,
)


def problem(msg: str) -> PackageError:
    return PackageError(msg)


FILES: dict[str, bytes | PayloadFile] = {
    "Library/Example/config.txt": b"hello\n",
    "usr/local/bin/tool": PayloadFile(b"#!/bin/sh\necho tool\n", 0o755),
    "usr/local/bin/alias": PayloadFile(symlink="tool"),
}
WHEN = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)


def _extract_all(pkg_path: Path, root: Path) -> None:
    with FlatPackage(pkg_path) as pkg:
        for comp in pkg.install_order():
            with pkg.open_payload(comp) as reader:
                scan(reader)
            with pkg.open_payload(comp) as reader:
                extract(reader, root, location=comp.info.effective_install_location)


def test_component_round_trip(tmp_path: Path) -> None:
    path = build_component_pkg(
        tmp_path / "c.pkg",
        "com.example.tool",
        "1.2.3",
        FILES,
        install_location="/opt/example",
        scripts={"preinstall": "#!/bin/sh\nexit 0\n", "postinstall": "#!/bin/sh\nexit 0\n", "helper.sh": ":"},
        postinstall_action="logout",
    )
    facts = read_package(path)
    assert facts.kind == "component" and not facts.signed
    (comp,) = facts.components
    info = comp.info
    assert (info.identifier, info.version, info.install_location, info.auth) == (
        "com.example.tool",
        "1.2.3",
        "/opt/example",
        "root",
    )
    assert info.postinstall_action == "logout"
    assert dict(info.scripts) == {"preinstall": "./preinstall", "postinstall": "./postinstall"}
    # ".", Library, Library/Example, the file, usr, usr/local, usr/local/bin, two entries in bin
    assert info.number_of_files == 9
    assert comp.payload_format == "gzip-cpio" and comp.has_scripts and not comp.has_bom
    assert facts.toc_checksum is not None and facts.trailing_bytes == 0
    root = tmp_path / "root"
    _extract_all(path, root)
    base = root / "opt/example"
    assert (base / "Library/Example/config.txt").read_bytes() == b"hello\n"
    assert stat.S_IMODE((base / "usr/local/bin/tool").stat().st_mode) == 0o755
    assert os.readlink(base / "usr/local/bin/alias") == "tool"
    with FlatPackage(path) as pkg, pkg.open_payload(pkg.components[0], "Scripts") as reader:
        names = {e.name: e.mode for e in reader}
    assert names["./postinstall"] == stat.S_IFREG | 0o755
    assert "./helper.sh" in names


def test_output_is_deterministic(tmp_path: Path) -> None:
    a = build_component_pkg(tmp_path / "a.pkg", "com.example.a", "1", FILES, created=WHEN)
    b = build_component_pkg(tmp_path / "b.pkg", "com.example.a", "1", FILES, created=WHEN)
    assert a.read_bytes() == b.read_bytes()
    assert read_package(a).creation_time == "2024-05-01T12:00:00"


def test_payload_root_folder_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "Applications/Demo.app/Contents").mkdir(parents=True)
    (src / "Applications/Demo.app/Contents/Info.plist").write_text("<plist/>")
    (src / "Applications/Demo.app/Contents/run").write_text("#!/bin/sh\n")
    os.chmod(src / "Applications/Demo.app/Contents/run", 0o750)
    os.symlink("Contents/run", src / "Applications/Demo.app/run")
    path = build_component_pkg(tmp_path / "d.pkg", "com.example.demo", "2", payload_root=src)
    root = tmp_path / "root"
    _extract_all(path, root)
    app = root / "Applications/Demo.app"
    assert (app / "Contents/Info.plist").read_text() == "<plist/>"
    assert stat.S_IMODE((app / "Contents/run").stat().st_mode) == 0o750
    assert os.readlink(app / "run") == "Contents/run"
    assert read_package(path).components[0].info.number_of_files == 7


def test_pbzx_payload_with_several_chunks_and_a_stored_one(tmp_path: Path) -> None:
    noise = os.urandom(300_000)  # xz cannot shrink it: that chunk is stored
    files: dict[str, bytes | PayloadFile] = {"a/noise.bin": noise, "a/zeros.bin": b"\0" * 700_000}
    path = build_component_pkg(
        tmp_path / "p.pkg", "com.example.pbzx", "1", files, compression="pbzx", pbzx_chunk_size=256 * 1024
    )
    facts = read_package(path)
    assert facts.components[0].payload_format == "pbzx-cpio"
    with FlatPackage(path) as pkg:
        member = pkg.xar.member("Payload")
        assert member is not None
        raw = pkg.xar.read(member, limit=1 << 24)
    assert raw[:4] == b"pbzx" and int.from_bytes(raw[4:12], "big") == 256 * 1024
    sizes = []
    pos = 12
    while pos < len(raw):
        size, csize = (
            int.from_bytes(raw[pos : pos + 8], "big"),
            int.from_bytes(raw[pos + 8 : pos + 16], "big"),
        )
        sizes.append((size, csize))
        pos += 16 + csize
    assert pos == len(raw) and len(sizes) >= 4
    assert any(s == c for s, c in sizes), "an incompressible chunk is stored"
    assert any(c < s for s, c in sizes), "a compressible chunk is xz"
    root = tmp_path / "root"
    _extract_all(path, root)
    assert (root / "a/noise.bin").read_bytes() == noise
    assert (root / "a/zeros.bin").read_bytes() == b"\0" * 700_000


def test_pbzx_reader_decodes_the_published_layout() -> None:
    data = b"".join(bytes([i]) * 5000 for i in range(50))
    out = io.BytesIO()
    assert write_pbzx(io.BytesIO(data), out, chunk_size=64 * 1024) == 4
    out.seek(0)
    reader = PbzxReader(out, problem)
    assert reader.chunk_size == 64 * 1024
    assert io.BufferedReader(reader).read() == data
    assert reader.chunks == 4


@pytest.mark.parametrize("fmt", ["odc", "newc"])
@pytest.mark.parametrize("wrap", ["raw", "gzip", "bzip2"])
def test_cpio_formats_and_wrappers(tmp_path: Path, fmt: str, wrap: str) -> None:
    import bz2

    items = [
        CpioItem(".", stat.S_IFDIR | 0o755),
        CpioItem("./odd", stat.S_IFREG | 0o644, b"x" * 7),
        CpioItem("./dir", stat.S_IFDIR | 0o755),
        CpioItem("./dir/five", stat.S_IFREG | 0o600, b"12345"),
    ]
    buf = io.BytesIO()
    write_cpio(buf, items, fmt)  # type: ignore[arg-type]
    raw = buf.getvalue()
    payload = {"raw": raw, "gzip": gzip.compress(raw), "bzip2": bz2.compress(raw)}[wrap]
    info = b'<pkg-info identifier="com.example.fmt" version="1" install-location="/"/>'
    path = write_xar(
        tmp_path / "f.pkg", [XarSource("PackageInfo", info, "zlib"), XarSource("Payload", payload)]
    )
    with FlatPackage(path) as pkg, pkg.open_payload(pkg.components[0]) as reader:
        got = [(e.name, e.mode, e.size) for e in reader]
        assert reader.format == fmt
    assert got == [(i.name, i.mode, len(i.data)) for i in items]  # type: ignore[arg-type]
    _extract_all(path, tmp_path / "root")
    assert (tmp_path / "root/dir/five").read_bytes() == b"12345"


def test_newc_hard_links_become_hard_links(tmp_path: Path) -> None:
    items = [
        CpioItem("./first", stat.S_IFREG | 0o644, b"", nlink=2, ino=7),
        CpioItem("./second", stat.S_IFREG | 0o644, b"shared", nlink=2, ino=7),
    ]
    buf = io.BytesIO()
    write_cpio(buf, items, "newc")
    buf.seek(0)
    result = extract(CpioReader(buf, problem), tmp_path)
    assert (tmp_path / "first").read_bytes() == b"shared"
    assert (tmp_path / "first").stat().st_ino == (tmp_path / "second").stat().st_ino
    assert (result.files, result.hardlinks) == (1, 1)


def test_members_in_every_encoding_round_trip(tmp_path: Path) -> None:
    body = b"The quick brown fox. " * 1000
    path = write_xar(
        tmp_path / "x.xar",
        [XarSource("stored", body), XarSource("zlib", body, "zlib"), XarSource("dir/bzip2", body, "bzip2")],
    )
    from bootstrapper.flatpkg.xar import XarArchive

    with XarArchive(path) as x:
        for name in ("stored", "zlib", "dir/bzip2"):
            m = x.member(name)
            assert m is not None
            assert x.read(m) == body
        assert x.member("dir") is not None and x.member("dir").type == "directory"  # type: ignore[union-attr]


def test_product_archive_round_trip(tmp_path: Path) -> None:
    a = build_component_pkg(tmp_path / "a.pkg", "com.example.a", "1.0", {"a.txt": b"a"})
    b = build_component_pkg(
        tmp_path / "b.pkg",
        "com.example.b",
        "2.0",
        {"b.txt": b"b"},
        compression="pbzx",
        install_location="/opt",
    )
    path = build_product_archive(
        tmp_path / "product.pkg", [b, a], title="Example", product_id="com.example", minimum_os="13.0"
    )
    facts = read_package(path)
    assert facts.kind == "product" and facts.dangling_pkg_refs == ()
    d = facts.distribution
    assert d is not None and d.title == "Example" and d.product_id == "com.example"
    assert d.product_version == "2.0" and d.minimum_os == "13.0"
    assert [(r.id, r.version, r.component) for r in d.pkg_refs] == [
        ("com.example.b", "2.0", "b.pkg"),
        ("com.example.a", "1.0", "a.pkg"),
    ]
    assert d.host_architectures == ("arm64", "x86_64")
    with FlatPackage(path) as pkg:
        assert [c.info.identifier for c in pkg.install_order()] == ["com.example.b", "com.example.a"]
    _extract_all(path, tmp_path / "root")
    assert (tmp_path / "root/opt/b.txt").read_bytes() == b"b"
    assert (tmp_path / "root/a.txt").read_bytes() == b"a"


def _peak_while_extracting(tmp_path: Path, mib: int) -> int:
    block = bytes(range(256)) * 4096
    src = tmp_path / f"src{mib}"
    src.mkdir()
    with open(src / "big.bin", "wb") as fh:
        for _ in range(mib):
            fh.write(block)
    path = build_component_pkg(tmp_path / f"big{mib}.pkg", "com.example.big", "1", payload_root=src)
    tracemalloc.start()
    try:
        _extract_all(path, tmp_path / f"root{mib}")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (tmp_path / f"root{mib}/big.bin").stat().st_size == mib * 1024 * 1024
    return peak


def test_a_large_payload_streams_in_bounded_memory(tmp_path: Path) -> None:
    small = _peak_while_extracting(tmp_path, 4)
    large = _peak_while_extracting(tmp_path, 48)
    assert large < 24 * 1024 * 1024, f"peak {large} bytes for a 48 MiB payload"
    assert large - small < 2 * 1024 * 1024, f"memory grows with the payload: {small} → {large}"
