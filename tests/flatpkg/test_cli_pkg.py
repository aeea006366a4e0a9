"""`bootstrapper pkg info` and `pkg files` through the real CLI entry point (its one error boundary)."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest

from bootstrapper.cli import main
from tests.support.pkgwriter import (
    CpioItem,
    PayloadFile,
    XarSource,
    build_component_pkg,
    build_product_archive,
    write_cpio,
    write_xar,
)


def test_info_json_reproduces_the_recorded_facts(pkgs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pkg", "info", "--json", str(pkgs / "dockutil-3.0-product.pkg")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "product" and data["signed"] is False
    assert data["toc_checksum"] == "615328b66e869cb0fe47c3f1d79b8abcfcbbb477"
    assert data["component_ids"] == ["com.installapplicationsdemo.dockutil"]
    (comp,) = data["components"]
    assert comp["name"] == "dockutil-3.0.pkg" and comp["info"]["install_kbytes"] == 32
    assert data["distribution"]["pkg_refs"][0]["path"] == "#dockutil-3.0.pkg"


def test_info_text_names_the_signer(pkgs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pkg", "info", str(pkgs / "installomator-10.3-signed.pkg")]) == 0
    out = capsys.readouterr().out
    assert "signed:        yes, by Developer ID Installer: Armin Briegel (JME5BW3F3R)" in out
    assert "install-location: /usr/local/Installomator/" in out


def test_info_reports_a_dangling_pkg_ref(pkgs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pkg", "info", str(pkgs / "fastlane-MacAppOnly.pkg")]) == 0
    assert "warning: pkg-ref com.example.Sample names a component that is not in the archive" in (
        capsys.readouterr().out
    )


def test_a_xar_that_is_no_package_is_one_error_line(pkgs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pkg", "info", str(pkgs / "homebrew-container-not-a-pkg.pkg")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "not a flat package" in err[0]


def test_files_lists_the_payload(pkgs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pkg", "files", str(pkgs / "sparkle-test.pkg")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        ".",
        "./sparklepkgtest.app",
        "./sparklepkgtest.app/Contents",
        "./sparklepkgtest.app/Contents/Info.plist",
        "./sparklepkgtest.app/Contents/PkgInfo",
    ]


def test_files_of_a_product_archive_are_grouped_by_component(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = build_component_pkg(tmp_path / "a.pkg", "com.example.a", "1", {"a": b""})
    b = build_component_pkg(tmp_path / "b.pkg", "com.example.b", "1", {"b": b""})
    product = build_product_archive(tmp_path / "p.pkg", [a, b])
    assert main(["pkg", "files", str(product)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "# a.pkg (com.example.a)",
        ".",
        "./a",
        "# b.pkg (com.example.b)",
        ".",
        "./b",
    ]


def test_control_characters_from_a_package_are_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = build_component_pkg(
        tmp_path / "e.pkg", "com.example.e", "1", {"evil\x1b[2Jname": PayloadFile(b"")}
    )
    assert main(["pkg", "files", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "./evil\\x1b[2Jname" in out


def test_files_flags_entries_outside_the_install_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = [
        CpioItem(".", stat.S_IFDIR | 0o755),
        CpioItem("./ok.txt", stat.S_IFREG | 0o644, b"ok"),
        CpioItem("../escape", stat.S_IFREG | 0o644, b"x"),
        CpioItem("./a/../../escape", stat.S_IFREG | 0o644, b"x"),
        CpioItem("/etc/evil", stat.S_IFREG | 0o644, b"x"),
        CpioItem("./..data", stat.S_IFREG | 0o644, b"a dotted name, not a climb"),
    ]
    buf = io.BytesIO()
    write_cpio(buf, items)
    info = b'<pkg-info identifier="com.example.evil" version="1"/>'
    path = write_xar(
        tmp_path / "evil.pkg", [XarSource("PackageInfo", info), XarSource("Payload", buf.getvalue())]
    )
    assert main(["pkg", "files", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        ".",
        "./ok.txt",
        "../escape  (refused: outside the install root)",
        "./a/../../escape  (refused: outside the install root)",
        "/etc/evil  (refused: outside the install root)",
        "./..data",
    ]
