"""Package Team IDs: pkgutil's answer parsed from real recordings, the simulated Mac's own check of
the signature and chain, and a forged re-signature that only the chain check catches."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bootstrapper.flatpkg import read_facts
from bootstrapper.paths import Paths
from bootstrapper.platform.base import PackageTeam, SystemProxy
from bootstrapper.platform.macos import MacOSPlatform, parse_check_signature, parse_scutil_proxy
from bootstrapper.platform.sandbox import SandboxPlatform, signed_team
from tests.support.fake_macos import FakeMac, recording
from tests.support.forged_pkg import forge

INSTALLOMATOR_NAME = "Developer ID Installer: Armin Briegel (JME5BW3F3R)"


@pytest.mark.parametrize(
    ("name", "team", "found"),
    [
        (
            "pkgutil-check-signature-devid-rtools-sha1.txt",
            "LNVWJ4S7DC",
            "Developer ID Installer: James Balamuta (LNVWJ4S7DC)",
        ),
        (
            "pkgutil-check-signature-devid-notarized-nudge-partial.txt",
            "9GQZ7KUFR6",
            "Developer ID Installer: Clever DevOps Co. (9GQZ7KUFR6)",
        ),
        (
            "pkgutil-check-signature-devid-notarized-escrowbuddy-partial.txt",
            "T4SK8ZXCXG",
            "Developer ID Installer: Mac Admins Open Source (T4SK8ZXCXG)",
        ),
        ("pkgutil-check-signature-no-signature.txt", None, "no signature"),
        (
            "pkgutil-check-signature-apple-software-partial.txt",
            None,
            "Software Update (signed Apple Software)",
        ),
        (
            "pkgutil-check-signature-untrusted-partial.txt",
            None,
            "Developer ID Application: EPSON (TXAEAV5RN4) (signed by untrusted certificate)",
        ),
    ],
)
def test_check_signature_recordings(name: str, team: str | None, found: str) -> None:
    assert parse_check_signature(recording(name)) == PackageTeam(team, found)


def test_a_trusted_status_with_a_leaf_of_another_kind_has_no_team() -> None:
    text = recording("pkgutil-check-signature-devid-rtools-sha1.txt").replace(
        "Developer ID Installer:", "3rd Party Mac Developer Installer:"
    )
    answer = parse_check_signature(text)
    assert answer.team is None
    assert "not a Developer ID Installer certificate" in answer.found


def test_mac_asks_pkgutil_with_the_package_path(mac: MacOSPlatform, fake: FakeMac, tmp_path: Path) -> None:
    pkg = tmp_path / "Escrow.pkg"
    pkg.write_bytes(b"not read by us: pkgutil decides")
    fake.answer(
        "pkgutil",
        ["--check-signature", str(pkg)],
        recording("pkgutil-check-signature-devid-notarized-escrowbuddy-partial.txt"),
    )
    answer = asyncio.run(mac.package_team(pkg))
    assert answer.team == "T4SK8ZXCXG"
    assert fake.calls("pkgutil") == [["--check-signature", str(pkg)]]


def test_mac_unsigned_package_exit_1_has_no_team(mac: MacOSPlatform, fake: FakeMac, tmp_path: Path) -> None:
    pkg = tmp_path / "FlockAgent.pkg"
    fake.answer(
        "pkgutil", ["--check-signature", str(pkg)], recording("pkgutil-check-signature-no-signature.txt"), 1
    )
    assert asyncio.run(mac.package_team(pkg)) == PackageTeam(None, "no signature")


@pytest.mark.parametrize(
    ("name", "proxy"),
    [
        ("scutil-proxy-pac-only.txt", None),
        ("scutil-proxy-exceptions-only.txt", None),
        (
            "scutil-proxy-https-written.txt",
            SystemProxy("http://proxy.corp.example.com:3128", ("*.local", "169.254/16", ".corp.example.com")),
        ),
        (
            "scutil-proxy-https-exceptions-simple-hostnames.txt",
            SystemProxy(
                "http://127.0.0.1:1082",
                ("119.29.29.29.dns", "*.abchina.com.cn", "192.168.0.0/16", "*.local", "localhost"),
                exclude_simple=True,
            ),
        ),
        ("scutil-proxy-https-surge-kb.txt", SystemProxy("http://127.0.0.1:6152", (), exclude_simple=True)),
    ],
)
def test_scutil_proxy(name: str, proxy: SystemProxy | None) -> None:
    assert parse_scutil_proxy(recording(name)) == proxy


def test_a_disabled_https_proxy_is_not_used() -> None:
    text = recording("scutil-proxy-https-written.txt").replace("HTTPSEnable : 1", "HTTPSEnable : 0")
    assert parse_scutil_proxy(text) is None


def test_simple_hostnames_go_through_unless_excluded() -> None:
    text = recording("scutil-proxy-https-exceptions-simple-hostnames.txt")
    off = parse_scutil_proxy(text.replace("ExcludeSimpleHostnames : 1", "ExcludeSimpleHostnames : 0"))
    assert off is not None and off.exclude_simple is False
    assert parse_scutil_proxy(recording("scutil-proxy-https-written.txt")) == SystemProxy(
        "http://proxy.corp.example.com:3128", ("*.local", "169.254/16", ".corp.example.com"), False
    )


def test_an_entry_with_commas_is_several_entries() -> None:
    text = recording("scutil-proxy-https-written.txt").replace(
        "2 : .corp.example.com", "2 : .corp.example.com, 10/8 ,, intranet"
    )
    proxy = parse_scutil_proxy(text)
    assert proxy is not None
    assert proxy.exceptions == ("*.local", "169.254/16", ".corp.example.com", "10/8", "intranet")


def test_mac_asks_scutil_for_the_proxy(mac: MacOSPlatform, fake: FakeMac) -> None:
    fake.answer("scutil", ["--proxy"], recording("scutil-proxy-https-written.txt"))
    proxy = asyncio.run(mac.system_proxy())
    assert proxy is not None and proxy.url == "http://proxy.corp.example.com:3128"
    assert proxy.exceptions == ("*.local", "169.254/16", ".corp.example.com")
    assert fake.calls("scutil") == [["--proxy"]]


def test_pkg_info_facts_show_the_team(pkgs: Path) -> None:
    assert read_facts(pkgs / "installomator-10.3-signed.pkg").team == "JME5BW3F3R"
    assert read_facts(pkgs / "munkitools_launchd-3.0.3265.pkg").team is None


def test_sandbox_reads_the_team_of_a_real_signed_package(pkgs: Path, tmp_path: Path) -> None:
    box = SandboxPlatform(Paths(root=tmp_path), arch="arm64", os_version="14.6")
    answer = asyncio.run(box.package_team(pkgs / "installomator-10.3-signed.pkg"))
    assert answer == PackageTeam("JME5BW3F3R", INSTALLOMATOR_NAME)


def test_sandbox_unsigned_package_has_no_team(pkgs: Path) -> None:
    assert signed_team(pkgs / "munkitools_launchd-3.0.3265.pkg") == PackageTeam(None, "no signature")


def test_sandbox_refuses_a_signature_that_does_not_match(pkgs: Path, tmp_path: Path) -> None:
    data = bytearray((pkgs / "installomator-10.3-signed.pkg").read_bytes())
    facts = read_facts(pkgs / "installomator-10.3-signed.pkg")
    sig = facts.signatures[0]
    data[facts.heap_start + sig.offset + 10] ^= 0xFF
    bad = tmp_path / "bad.pkg"
    bad.write_bytes(bytes(data))
    answer = signed_team(bad)
    assert answer.team is None
    assert answer.found == f"{INSTALLOMATOR_NAME} (the signature does not match the package)"


@pytest.mark.parametrize(
    ("keep_apple_chain", "why"),
    [(True, "broken certificate chain"), (False, "not issued under Apple Root CA")],
)
def test_sandbox_refuses_a_forged_team(pkgs: Path, tmp_path: Path, keep_apple_chain: bool, why: str) -> None:
    forged = forge(
        pkgs / "installomator-10.3-signed.pkg",
        tmp_path / "forged.pkg",
        INSTALLOMATOR_NAME,
        "JME5BW3F3R",
        keep_apple_chain=keep_apple_chain,
    )
    # The forgery is good enough to pass the xar check alone: our key signed the TOC.
    facts = read_facts(forged)
    assert facts.team == "JME5BW3F3R"
    assert facts.signatures[0].matches_leaf_key is True
    answer = signed_team(forged)
    assert answer.team is None
    assert why in answer.found
