"""The text-only fixtures (xml/): Distributions, a scripts-only PackageInfo and a real signed TOC."""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import pytest

from bootstrapper.flatpkg.info import parse_distribution, parse_package_info
from bootstrapper.flatpkg.xar import XarArchive


def test_zoom_distribution(pkgs: Path) -> None:
    data = (pkgs / "xml" / "zoom-Distribution.xml").read_bytes()
    assert len(data) == 1352
    d = parse_distribution(data, "zoom")
    (ref,) = d.pkg_refs
    assert (ref.id, ref.version, ref.install_kbytes, ref.path, ref.component) == (
        "us.zoom.pkg.videomeeting",
        "6.7.2.72191",
        437065,
        "#zoomus.pkg",
        "zoomus.pkg",
    )
    assert (d.product_id, d.product_version) == (None, "6.7.2.72191")
    assert d.host_architectures == ("x86_64", "arm64")
    assert d.minimum_os == "10.13"
    assert d.title == "Zoom Workplace"


def test_chrome_distribution(pkgs: Path) -> None:
    d = parse_distribution((pkgs / "xml" / "fleet-Distribution-chrome.xml").read_bytes(), "chrome")
    ref = next(r for r in d.pkg_refs if r.id == "com.google.Chrome")
    assert (ref.version, ref.install_kbytes, ref.path) == ("126.0.6478.62", 567336, "#GoogleChrome.pkg")


def test_teams_distribution_merges_split_pkg_refs(pkgs: Path) -> None:
    d = parse_distribution((pkgs / "xml" / "fleet-Distribution-microsoft-teams.xml").read_bytes(), "teams")
    refs = {r.id: r for r in d.pkg_refs}
    assert list(refs) == [
        "com.microsoft.teams2",
        "com.microsoft.autoupdate",
        "com.microsoft.MSTeamsAudioDevice",
    ]
    teams = refs["com.microsoft.teams2"]
    assert (teams.version, teams.install_kbytes, teams.path) == (
        "24124.1412.2911.3341",
        955944,
        "#MicrosoftTeams_app.pkg",
    )
    mau = refs["com.microsoft.autoupdate"]
    assert mau.package_identifier == "com.microsoft.package.Microsoft_AutoUpdate.app"
    assert (mau.version, mau.install_kbytes) == ("4.68.24021116", 12694)
    assert (d.product_id, d.product_version) == (None, "24124.1412.2911.3341")
    assert d.host_architectures == ("arm64", "x86_64")
    assert d.minimum_os == "12.0"
    assert d.title == "Microsoft Teams"


def test_scripts_only_package_info_without_xml_declaration(pkgs: Path) -> None:
    info = parse_package_info((pkgs / "xml" / "fleet-PackageInfo-scriptOnly.xml").read_bytes(), "fleet")
    assert (info.identifier, info.version) == ("com.mygreatcompany.pkg.HelloWorld", "1.2.3")
    assert (info.install_kbytes, info.number_of_files) == (0, 1)
    assert dict(info.scripts) == {"preinstall": "./preinstall"}
    assert info.follow_symlinks is False


@pytest.fixture
def zoom_xar(pkgs: Path, tmp_path: Path) -> Path:
    """A sparse xar around the real Zoom TOC: a right header and TOC checksum, zeros elsewhere."""
    toc = (pkgs / "xml" / "zoom-signed-toc.xml").read_bytes()
    packed = zlib.compress(toc, 9)
    path = tmp_path / "zoom.pkg"
    with open(path, "wb") as fh:
        fh.write(struct.pack(">4sHHQQI", b"xar!", 28, 1, len(packed), len(toc), 1))
        fh.write(packed)
        fh.write(hashlib.sha1(packed).digest())  # noqa: S324 (the format's checksum)
        fh.truncate(28 + len(packed) + 200 * 1024 * 1024)  # sparse: covers the 181 MB payload extent
    return path


def test_real_signed_zoom_toc(zoom_xar: Path) -> None:
    with XarArchive(zoom_xar) as x:
        assert x.creation_time == "2025-12-29T09:01:54"
        assert len(x.members) == 55
        rsa, cms = x.signatures
        assert (rsa.style, rsa.offset, rsa.size) == ("RSA", 20, 256)
        assert (cms.style, cms.offset, cms.size) == ("CMS", 276, 9216)
        from bootstrapper.flatpkg.der import parse_certificate

        for sig in (rsa, cms):
            names = [parse_certificate(c).common_name for c in sig.certificates]
            assert names == [
                "Developer ID Installer: Zoom Video Communications, Inc. (BJ4HAAB9B3)",
                "Developer ID Certification Authority",
                "Apple Root CA",
            ]
        payload = x.member("zoomus.pkg/Payload")
        assert payload is not None and payload.data is not None
        assert payload.data.encoding == "application/octet-stream" and payload.data.size == 181_301_879
        assert {m.name for m in x.children("zoomus.pkg")} == {"Bom", "Payload", "Scripts", "PackageInfo"}
        dist = x.member("Distribution")
        assert dist is not None and dist.data is not None and dist.data.size == 1352
        lprojs = [m for m in x.children("Resources") if m.name.endswith(".lproj")]
        assert len(lprojs) == 16
        for lproj in lprojs:
            assert {m.name for m in x.children(lproj.path)} == {"Welcome.rtf", "Localizable.strings"}
