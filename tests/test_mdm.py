"""`bootstrapper mdm manifest|command`: the InstallEnterpriseApplication manifest and command,
against MicroMDM's published chunk-hash vectors and the real packages in tests/data/pkgs/."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import plistlib
from pathlib import Path

import pytest

from bootstrapper import cli, mdm
from bootstrapper.errors import PackageError, UsageError

MIB10 = 10 * 1024 * 1024
#: MicroMDM appmanifest_test.go: three 10 MiB zero chunks, then one zero byte.
ZERO_CHUNK_MD5 = "f1c9645dbc14efddc7d8a322685f26eb"
ONE_ZERO_MD5 = "93b885adfe0da089cdf634904fd59f71"
URL = "https://cdn.example.com/pkgs/x.pkg"
#: From SOURCES.md: the sha256 of each whole file.
INSTALLOMATOR_SHA256 = "9f47b332e31207e056e350d87fbb70c838005640bacc742ce0101fd8965bb50e"
DOCKUTIL_SHA256 = "faabea87b63c98e5a11823c3b8ec6968a10eaf2e55a50143035e7c8cf1adb207"


@pytest.fixture(scope="module")
def pkgs(testdata: Path) -> Path:
    return testdata / "pkgs"


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_micromdm_vectors() -> None:
    hashes = mdm.chunk_hashes(io.BytesIO(bytes(3 * MIB10 + 1)), 3 * MIB10 + 1)
    assert hashes.chunk_size == MIB10
    assert hashes.md5s == [ZERO_CHUNK_MD5] * 3 + [ONE_ZERO_MD5]
    assert hashes.sha256s[-1] == hashlib.sha256(b"\0").hexdigest()
    assert hashes.sha256s[0] == hashlib.sha256(bytes(MIB10)).hexdigest()


def test_a_file_of_exactly_one_chunk_has_one_hash() -> None:
    hashes = mdm.chunk_hashes(io.BytesIO(bytes(MIB10)), MIB10)
    assert hashes.md5s == [ZERO_CHUNK_MD5]


def test_a_small_file_has_its_own_size_as_chunk_size_like_micromdm() -> None:
    hashes = mdm.chunk_hashes(io.BytesIO(b"\0"), 1)
    assert (hashes.chunk_size, hashes.md5s) == (1, [ONE_ZERO_MD5])
    with pytest.raises(PackageError, match="empty"):
        mdm.chunk_hashes(io.BytesIO(b""), 0)


def test_manifest_for_a_signed_product_archive(pkgs: Path) -> None:
    manifest, warnings = mdm.build_manifest(pkgs / "installomator-10.3-signed.pkg", URL)
    assert warnings == []
    [item] = manifest["items"]
    [asset] = item["assets"]
    assert asset == {
        "kind": "software-package",
        "url": URL,
        "md5-size": 84181,
        "md5s": [hashlib.md5((pkgs / "installomator-10.3-signed.pkg").read_bytes()).hexdigest()],  # noqa: S324
        "sha256-size": 84181,
        "sha256s": [INSTALLOMATOR_SHA256],
    }
    assert item["metadata"] == {
        "bundle-identifier": "com.scriptingosx.Installomator",
        "bundle-version": "10.3",
        "kind": "software",
        "title": "installomator-10.3-signed",
        "subtitle": "Developer ID Installer: Armin Briegel (JME5BW3F3R)",
    }


def test_an_unsigned_product_archive_is_refused_with_the_fix(pkgs: Path) -> None:
    with pytest.raises(PackageError, match=r"not signed; .*productsign --sign .*--allow-unsigned for a lab"):
        mdm.build_manifest(pkgs / "dockutil-3.0-product.pkg", URL)


def test_an_unsigned_product_archive_is_allowed_for_labs_with_a_warning(pkgs: Path) -> None:
    manifest, warnings = mdm.build_manifest(pkgs / "dockutil-3.0-product.pkg", URL, allow_unsigned=True)
    metadata = manifest["items"][0]["metadata"]
    assert (metadata["bundle-identifier"], metadata["bundle-version"]) == (
        "com.installapplicationsdemo.dockutil",
        "3.0",
    )
    assert manifest["items"][0]["assets"][0]["sha256s"] == [DOCKUTIL_SHA256]
    assert len(warnings) == 1 and "not signed" in warnings[0] and "productsign" in warnings[0]


def test_a_component_package_is_refused_with_the_fix(pkgs: Path) -> None:
    with pytest.raises(PackageError, match=r"component package.*productbuild --package .*sparkle-test\.pkg"):
        mdm.build_manifest(pkgs / "sparkle-test.pkg", URL)


def test_a_product_archive_missing_its_component_is_refused(pkgs: Path) -> None:
    with pytest.raises(PackageError, match=r"missing from the archive: com\.example\.Sample"):
        mdm.build_manifest(pkgs / "fastlane-MacAppOnly.pkg", URL)


def test_a_xar_that_is_no_package_is_refused(pkgs: Path) -> None:
    with pytest.raises(PackageError):
        mdm.build_manifest(pkgs / "homebrew-container-not-a-pkg.pkg", URL)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://cdn.example.com/x.pkg", "expected an https:// URL"),
        ("cdn.example.com/x.pkg", "expected an https:// URL"),
        ("https://user:pw@cdn.example.com/x.pkg", "remove the credentials"),
    ],
)
def test_urls_must_be_https_without_credentials(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        mdm.check_https(url, "--url")


def test_cli_manifest_plist_and_json(pkgs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pkg = str(pkgs / "installomator-10.3-signed.pkg")
    code, out, err = run(["mdm", "manifest", pkg, "--url", URL], capsys)
    assert (code, err) == (0, "")
    as_plist = plistlib.loads(out.encode())
    code, out, _ = run(["mdm", "manifest", pkg, "--url", URL, "--format", "json"], capsys)
    assert code == 0 and json.loads(out) == as_plist
    code, _, err = run(["mdm", "manifest", pkg, "--url", URL, "--format", "yaml"], capsys)
    assert code == 2 and "expected plist or json" in err


def test_cli_refuses_a_component_package_in_one_line(pkgs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["mdm", "manifest", str(pkgs / "sparkle-test.pkg"), "--url", URL], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "productbuild --package" in err


@pytest.mark.parametrize("command", ["manifest", "command"])
def test_cli_refuses_an_unsigned_package_in_one_line(
    pkgs: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    code, out, err = run(["mdm", command, str(pkgs / "dockutil-3.0-product.pkg"), "--url", URL], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "not signed" in err
    assert "--allow-unsigned" in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["manifest", "command"])
def test_cli_warns_about_an_unsigned_package_it_was_told_to_allow(
    pkgs: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    pkg = str(pkgs / "dockutil-3.0-product.pkg")
    code, out, err = run(["mdm", command, pkg, "--url", URL, "--allow-unsigned"], capsys)
    assert code == 0 and plistlib.loads(out.encode())
    assert err.startswith("warning: ") and "not signed (--allow-unsigned)" in err and err.count("\n") == 1


def test_command_with_an_inline_manifest(pkgs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pkg = str(pkgs / "installomator-10.3-signed.pkg")
    code, out, _ = run(["mdm", "command", pkg, "--url", URL, "--uuid", "C0FFEE"], capsys)
    assert code == 0
    doc = plistlib.loads(out.encode())
    assert doc["CommandUUID"] == "C0FFEE"
    assert doc["Command"]["RequestType"] == "InstallEnterpriseApplication"
    assert doc["Command"]["Manifest"] == mdm.build_manifest(Path(pkg), URL)[0]
    assert "ManifestURL" not in doc["Command"]


def test_command_with_a_pinned_manifest_url(
    pkgs: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    der = b"\x30\x82\x01\x0a" + b"\x01" * 266
    pem = tmp_path / "ca.pem"
    pem.write_text(
        "-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der).decode() + "-----END CERTIFICATE-----\n"
    )
    raw = tmp_path / "leaf.cer"
    raw.write_bytes(der)
    args = ["mdm", "command", str(pkgs / "installomator-10.3-signed.pkg"), "--url", URL]
    args += [
        "--manifest-url",
        "https://cdn.example.com/m.plist",
        "--pin-cert",
        str(pem),
        "--pin-cert",
        str(raw),
    ]
    code, out, err = run([*args, "--require-revocation-check"], capsys)
    assert code == 0, err
    command = plistlib.loads(out.encode())["Command"]
    assert command == {
        "RequestType": "InstallEnterpriseApplication",
        "ManifestURL": "https://cdn.example.com/m.plist",
        "ManifestURLPinningCerts": [der, der],
        "PinningRevocationCheckRequired": True,
    }
    assert "<data>" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--pin-cert", "x.pem"], "--pin-cert needs --manifest-url"),
        (
            ["--manifest-url", "http://e.com/m.plist"],
            "--manifest-url 'http://e.com/m.plist': expected an https",
        ),
        (
            ["--manifest-url", "https://e.com/m", "--require-revocation-check"],
            "needs at least one --pin-cert",
        ),
        (["--manifest-url", "https://e.com/m", "--pin-cert", "/nonexistent.pem"], "cannot read it"),
    ],
)
def test_command_option_mistakes_are_one_line(
    pkgs: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    pkg = str(pkgs / "installomator-10.3-signed.pkg")
    code, out, err = run(["mdm", "command", pkg, "--url", URL, *extra], capsys)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1


def test_a_file_that_is_no_certificate_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    with pytest.raises(UsageError, match="not a certificate"):
        mdm.read_certificate(junk)


def test_install_command_needs_exactly_one_manifest_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        mdm.install_command()
    with pytest.raises(ValueError, match="exactly one"):
        mdm.install_command(manifest={}, manifest_url="https://e.com/m")
