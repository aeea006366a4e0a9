"""Every fact that tests/data/pkgs/SOURCES.md records, reproduced by our reader."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bootstrapper.errors import PackageError
from bootstrapper.flatpkg import FlatPackage, read_package
from bootstrapper.flatpkg.xar import XarArchive

# file: (size, sha256, toc compressed, toc uncompressed, heap start, toc sha1, creation time)
HEADERS = {
    "sparkle-test.pkg": (
        4956,
        "9319af3fafb29f16da4c35e614c51586434c0903632ffedacfb2faf209cf4886",
        812,
        3017,
        840,
        "a19a36398b5b343e5807701224eb4c9232995038",
        "2015-04-24T08:59:42",
    ),
    "fastlane-MacAppOnly.pkg": (
        4640,
        "5e176d340850b7309a0b30b5cc9bcd9e158a1b080ffd3f16c10c2c4f63229fe9",
        496,
        1004,
        524,
        "e90a2047f168ba20a40e4be5981f6987f2b815da",
        "2016-01-14T01:44:06",
    ),
    "kbox-uninstall-scripts.pkg": (
        4897,
        "9d3be708046814ddbcc46200720099be7df1f777f3d2c5b6fc6f3670b1e249e7",
        753,
        3019,
        781,
        "9c26b2a07d0cdc04246491297824b4ee249e2ecc",
        "2016-01-11T15:07:36",
    ),
    "installomator-10.3-signed.pkg": (
        84181,
        "9f47b332e31207e056e350d87fbb70c838005640bacc742ce0101fd8965bb50e",
        4392,
        13852,
        4420,
        "0587370b5aaf7bbddef5907ccf69721b9efe8b14",
        "2023-02-10T11:22:02",
    ),
    "munkitools_launchd-3.0.3265.pkg": (
        4851,
        "66441eaba5aa717fd81d1a84ddfb309da90cff6bc5904dc0e94c1f6e216c2a89",
        707,
        2610,
        735,
        "1f35037e26c31ff921b30751c09127379389380e",
        "2017-12-18T20:00:42",
    ),
    "dockutil-3.0-product.pkg": (
        10488,
        "faabea87b63c98e5a11823c3b8ec6968a10eaf2e55a50143035e7c8cf1adb207",
        902,
        3039,
        930,
        "615328b66e869cb0fe47c3f1d79b8abcfcbbb477",
        "2020-01-02T19:22:29",
    ),
    "homebrew-container-not-a-pkg.pkg": (
        516,
        "611c50c8a2a2098951d2cd0fd54787ed81b92cd97b4b08bd7cba17f1e1d8e40b",
        468,
        1185,
        496,
        "f9f5a7a1ffc5289c8a18b18aa498ce797e9b2a2f",
        "2014-08-02T14:31:13",
    ),
}

# file: {member: (encoding, offset, length, size)}; None where SOURCES.md does not record it
MEMBERS = {
    "sparkle-test.pkg": {
        "Payload": ("application/octet-stream", 1094, 389, None),
        "PackageInfo": ("application/x-bzip2", 704, 390, 702),
        "Bom": ("application/x-bzip2", 20, 631, 35774),
    },
    "fastlane-MacAppOnly.pkg": {"Distribution": ("application/x-gzip", 20, 449, 1141)},
    "kbox-uninstall-scripts.pkg": {
        "PackageInfo": ("application/x-gzip", 1120, 312, 550),
        "Scripts": ("application/octet-stream", 497, 623, None),
        "Payload": ("application/octet-stream", 418, 79, None),
        "Bom": ("application/x-gzip", 20, 398, 35177),
    },
    "installomator-10.3-signed.pkg": {
        "Distribution": ("application/x-gzip", 77758, 318, 798),
        "Installomator.pkg/Bom": ("application/x-gzip", 9492, None, None),
        "Installomator.pkg/Payload": ("application/octet-stream", 9975, 67493, None),
        "Installomator.pkg/PackageInfo": ("application/x-gzip", 77468, 290, 502),
    },
    "munkitools_launchd-3.0.3265.pkg": {
        "PackageInfo": ("application/x-bzip2", 2039, 302, 419),
        "Payload": ("application/octet-stream", 941, 1098, None),
        "Bom": ("application/x-bzip2", 20, 921, 36108),
    },
    "dockutil-3.0-product.pkg": {
        "Distribution": ("application/x-gzip", 9264, 294, 797),
        "dockutil-3.0.pkg/Bom": ("application/x-gzip", 20, None, None),
        "dockutil-3.0.pkg/Payload": ("application/octet-stream", 822, 8184, None),
        "dockutil-3.0.pkg/PackageInfo": ("application/x-gzip", 9006, 258, 433),
    },
}

# file: (heap end, trailing bytes)
TRAILING = {
    "sparkle-test.pkg": (2323, 2633),
    "fastlane-MacAppOnly.pkg": (993, 3647),
    "installomator-10.3-signed.pkg": (82496, 1685),
    "munkitools_launchd-3.0.3265.pkg": (3076, 1775),
    "dockutil-3.0-product.pkg": (10488, 0),
}


@pytest.mark.parametrize("name", sorted(HEADERS))
def test_header_toc_and_checksum_match_the_record(pkgs: Path, name: str) -> None:
    size, sha256, toc_c, toc_u, heap, toc_sha1, created = HEADERS[name]
    path = pkgs / name
    assert path.stat().st_size == size
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    with XarArchive(path) as x:
        h = x.header
        assert (h.magic, h.header_size, h.version, h.checksum_alg) == (b"xar!", 28, 1, 1)
        assert (h.toc_length_compressed, h.toc_length_uncompressed) == (toc_c, toc_u)
        assert x.toc_compressed.startswith(b"\x78\xda")
        assert len(x.toc_xml) == toc_u
        assert x.heap_start == heap
        assert x.toc_checksum is not None and x.toc_checksum.style == "sha1"
        assert x.toc_checksum.hexdigest == toc_sha1
        assert x.heap_bytes(0, 20).hex() == toc_sha1
        assert x.creation_time == created


@pytest.mark.parametrize("name", sorted(MEMBERS))
def test_member_extents_match_the_record(pkgs: Path, name: str) -> None:
    with XarArchive(pkgs / name) as x:
        for path, (encoding, offset, length, size) in MEMBERS[name].items():
            m = x.member(path)
            assert m is not None and m.data is not None, path
            assert m.data.encoding == encoding, path
            assert m.data.offset == offset, path
            if length is not None:
                assert m.data.length == length, path
            if size is not None:
                assert m.data.size == size, path


@pytest.mark.parametrize("name", sorted(HEADERS))
def test_every_member_and_attribute_passes_its_checksums(pkgs: Path, name: str) -> None:
    with XarArchive(pkgs / name) as x:
        checked = 0
        for m in x.members:
            extents = [m.data] if m.data else []
            extents += [ea.data for ea in m.eas]
            for extent in extents:
                assert extent.archived is not None and extent.extracted is not None
                with x.open(extent, m.path) as fh:
                    data = fh.read()
                if extent.size is not None:
                    assert len(data) == extent.size
                checked += 1
        assert checked == sum(1 for m in x.members if m.data) + sum(len(m.eas) for m in x.members)


@pytest.mark.parametrize("name", sorted(TRAILING))
def test_bytes_after_the_last_extent_are_ignored(pkgs: Path, name: str) -> None:
    facts = read_package(pkgs / name)
    assert (facts.heap_end, facts.trailing_bytes) == TRAILING[name]


def test_decoded_boms_are_bomstores(pkgs: Path) -> None:
    for name in MEMBERS:
        with XarArchive(pkgs / name) as x:
            for m in x.members:
                if m.name == "Bom":
                    assert x.read(m).startswith(b"BOMStore")


def test_toc_order_is_not_heap_order(pkgs: Path) -> None:
    with XarArchive(pkgs / "sparkle-test.pkg") as x:
        assert [m.path for m in x.members] == ["Payload", "PackageInfo", "Bom"]
        assert [m.id for m in x.members] == ["3", "2", "1"]
        offsets = [m.data.offset for m in x.members if m.data]
        assert offsets != sorted(offsets)


def _payload(pkg: FlatPackage, which: str = "Payload", index: int = 0) -> list[tuple[str, int, int]]:
    with pkg.open_payload(pkg.components[index], which) as reader:
        entries = [(e.name, e.mode, e.size) for e in reader]
        assert reader.format == "odc"
        return entries


def test_sparkle_component_with_bzip2_members_and_an_extended_attribute(pkgs: Path) -> None:
    with FlatPackage(pkgs / "sparkle-test.pkg") as pkg:
        facts = pkg.facts()
        assert facts.kind == "component" and not facts.signed and facts.signatures == ()
        info = facts.components[0].info
        assert (info.identifier, info.version, info.install_location, info.auth) == (
            "org.sparkle-project.testpkg",
            "0",
            "/tmp",
            "none",
        )
        assert (info.relocatable, info.overwrite_permissions, info.postinstall_action) == (
            True,
            False,
            "none",
        )
        assert info.generator_version == "InstallCmds-502 (14E7f)"
        assert (info.number_of_files, info.install_kbytes) == (5, 2)
        assert info.bundles == ("org.sparkle-project.testapp",)
        assert info.upgrade_bundles == ("org.sparkle-project.testapp",)
        assert info.relocate_bundles == ("org.sparkle-project.testapp",)
        member = pkg.xar.member("PackageInfo")
        assert member is not None and len(member.eas) == 1
        ea = member.eas[0]
        assert ea.name == "com.apple.TextEncoding"
        assert (ea.data.encoding, ea.data.offset, ea.data.length, ea.data.size) == (
            "application/x-bzip2",
            651,
            53,
            15,
        )
        assert len(pkg.xar.read(ea.data)) == 15
        assert facts.components[0].payload_format == "gzip-cpio"
        assert _payload(pkg) == [
            (".", 0o40755, 0),
            ("./sparklepkgtest.app", 0o40755, 0),
            ("./sparklepkgtest.app/Contents", 0o40755, 0),
            ("./sparklepkgtest.app/Contents/Info.plist", 0o100644, 265),
            ("./sparklepkgtest.app/Contents/PkgInfo", 0o100644, 8),
        ]


def test_fastlane_product_reports_its_dangling_pkg_ref(pkgs: Path) -> None:
    with FlatPackage(pkgs / "fastlane-MacAppOnly.pkg") as pkg:
        facts = pkg.facts()
        assert facts.kind == "product" and facts.components == ()
        assert facts.members == ("Distribution",)
        d = facts.distribution
        assert d is not None
        assert (d.min_spec_version, d.title, d.product_id, d.product_version) == (
            "2",
            "MacCoolApp",
            "com.example.Sample",
            "1.0",
        )
        assert d.host_architectures == ("x86_64",)
        (ref,) = d.pkg_refs
        assert (ref.id, ref.version, ref.install_kbytes, ref.path, ref.occurrences) == (
            "com.example.Sample",
            "1.0.0",
            7381,
            "#com.example.Sample.pkg",
            3,
        )
        assert facts.dangling_pkg_refs == ("com.example.Sample",)
        with pytest.raises(PackageError, match=r"com\.example\.Sample\.pkg, which is not in the archive"):
            pkg.install_order()


def test_kbox_has_no_install_location_an_empty_payload_and_a_postinstall(pkgs: Path) -> None:
    with FlatPackage(pkgs / "kbox-uninstall-scripts.pkg") as pkg:
        facts = pkg.facts()
        info = facts.components[0].info
        assert info.identifier == "com.github.kace_kbox_1000_uninstall" and info.version == "1.0"
        assert info.install_location is None and info.effective_install_location == "/"
        assert (info.auth, info.relocatable, info.overwrite_permissions) == ("root", False, True)
        assert info.generator_version == "InstallCmds-502 (14F1509)"
        assert (info.number_of_files, info.install_kbytes) == (1, 0)
        assert dict(info.scripts) == {"postinstall": "./postinstall"}
        assert _payload(pkg) == [(".", 0o40755, 0)]
        assert not facts.has_payload
        assert _payload(pkg, "Scripts") == [
            (".", 0o40755, 0),
            ("./postinstall", 0o100755, 1545),
            ("./._postinstall", 0o100644, 171),
        ]


def test_installomator_signatures_name_their_certificates(pkgs: Path) -> None:
    facts = read_package(pkgs / "installomator-10.3-signed.pkg")
    assert facts.signed
    rsa, cms = facts.signatures
    assert (rsa.element, rsa.style, rsa.offset, rsa.size) == ("signature", "RSA", 20, 256)
    assert (cms.element, cms.style, cms.offset, cms.size) == ("x-signature", "CMS", 276, 9216)
    names = [
        "Developer ID Installer: Armin Briegel (JME5BW3F3R)",
        "Developer ID Certification Authority",
        "Apple Root CA",
    ]
    assert [c.common_name for c in rsa.certificates] == names
    assert [c.common_name for c in cms.certificates] == names
    assert rsa.certificates[0].team == "JME5BW3F3R"
    assert rsa.matches_leaf_key is True
    assert facts.signer == names[0]


def test_installomator_cms_blob_is_ber_and_the_first_member_follows_it(pkgs: Path) -> None:
    with XarArchive(pkgs / "installomator-10.3-signed.pkg") as x:
        blob = x.heap_bytes(276, 9216)
        assert blob[:2] == b"\x30\x80"
        assert blob[8568:] == b"\0" * (9216 - 8568)
        assert min(m.data.offset for m in x.members if m.data) == 9492 == 276 + 9216
        assert x.file_size - x.heap_end == 1685
        with open(x.path, "rb") as fh:
            fh.seek(x.heap_end)
            assert fh.read(4) == b"t8lr"


def test_installomator_product_component_and_distribution(pkgs: Path) -> None:
    with FlatPackage(pkgs / "installomator-10.3-signed.pkg") as pkg:
        facts = pkg.facts()
        d = facts.distribution
        assert d is not None and d.min_spec_version == "1" and d.title is None
        (ref,) = d.pkg_refs
        assert (ref.id, ref.version, ref.install_kbytes, ref.path) == (
            "com.scriptingosx.Installomator",
            "10.3",
            307,
            "#Installomator.pkg",
        )
        assert (d.product_id, d.product_version) == ("com.scriptingosx.Installomator", "10.3")
        assert d.host_architectures == ("x86_64", "arm64")
        assert pkg.xar.member("Installomator.pkg") is not None
        assert pkg.xar.member("Installomator.pkg").type == "directory"  # type: ignore[union-attr]
        (comp,) = facts.components
        info = comp.info
        assert comp.name == "Installomator.pkg"
        assert (info.identifier, info.version, info.install_location) == (
            "com.scriptingosx.Installomator",
            "10.3",
            "/usr/local/Installomator/",
        )
        assert (info.auth, info.relocatable, info.overwrite_permissions) == ("root", False, True)
        assert info.generator_version == "InstallCmds-822 (22D49)"
        assert (info.number_of_files, info.install_kbytes) == (2, 307)
        assert _payload(pkg) == [(".", 0o40755, 0), ("./Installomator.sh", 0o100755, 313964)]
        assert facts.dangling_pkg_refs == ()


def test_munki_launchd_asks_for_a_restart(pkgs: Path) -> None:
    with FlatPackage(pkgs / "munkitools_launchd-3.0.3265.pkg") as pkg:
        info = pkg.components[0].info
        assert (info.identifier, info.version, info.install_location, info.auth) == (
            "com.googlecode.munki.launchd",
            "3.0.3265",
            "/",
            "root",
        )
        assert info.postinstall_action == "restart"
        assert info.generator_version == "InstallCmds-611 (16G1036)"
        assert (info.number_of_files, info.install_kbytes) == (13, 10)
        entries = _payload(pkg)
        assert entries[0] == (".", 0o41775, 0) and entries[1] == ("./Library", 0o41775, 0)
        names = [n for n, _, _ in entries]
        assert sum(n.startswith("./Library/LaunchAgents/") for n in names) == 4
        assert sum(n.startswith("./Library/LaunchDaemons/") for n in names) == 5
        assert len(entries) == info.number_of_files


def test_dockutil_product_archive(pkgs: Path) -> None:
    with FlatPackage(pkgs / "dockutil-3.0-product.pkg") as pkg:
        facts = pkg.facts()
        d = facts.distribution
        assert d is not None and d.min_spec_version == "1"
        (ref,) = d.pkg_refs
        assert (ref.id, ref.version, ref.install_kbytes, ref.path) == (
            "com.installapplicationsdemo.dockutil",
            "3.0",
            32,
            "#dockutil-3.0.pkg",
        )
        assert (d.product_id, d.product_version) == ("com.installapplicationsdemo.dockutil", "3.0")
        (comp,) = pkg.install_order()
        info = comp.info
        assert (info.identifier, info.version, info.install_location, info.auth) == (
            "com.installapplicationsdemo.dockutil",
            "3.0",
            "/",
            "root",
        )
        assert info.postinstall_action == "none" and info.generator_version == "InstallCmds-714 (19C57)"
        assert (info.number_of_files, info.install_kbytes) == (5, 32)
        entries = {n: (m, s) for n, m, s in _payload(pkg)}
        assert entries["./Library/installapplications/dockutil"] == (0o100755, 31433)
        assert "./Library/installapplications/._dockutil" in entries
        assert facts.has_payload and facts.component_ids == ("com.installapplicationsdemo.dockutil",)


def test_homebrew_container_is_a_xar_but_not_a_package(pkgs: Path) -> None:
    path = pkgs / "homebrew-container-not-a-pkg.pkg"
    with XarArchive(path) as x:
        assert [(m.path, m.type, m.id) for m in x.members] == [
            ("Naked", "directory", "1"),
            ("Naked/FAKE_PACKAGE_WATCH_OUT.txt", "file", "2"),
        ]
        empty = x.member("Naked/FAKE_PACKAGE_WATCH_OUT.txt")
        assert empty is not None and empty.data is None
        assert x.read(empty) == b""
        assert x.heap_end == x.file_size == 516
    with pytest.raises(PackageError, match=r"homebrew-container-not-a-pkg\.pkg: not a flat package"):
        read_package(path)
