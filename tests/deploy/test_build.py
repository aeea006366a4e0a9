"""The parts of `make pkg` that decide things, run on Linux: Mach-O detection, the universal2 rule,
dependency fusing, the requirements pin, relocation, signing order and every tool's argv."""

from __future__ import annotations

import plistlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bootstrapper.errors import UsageError
from bootstrapper.paths import PACKAGE_ID
from pkg.tooling import build
from pkg.tooling.payload import Payload

REPO = Path(__file__).resolve().parents[2]
THIN_ARM64 = b"\xcf\xfa\xed\xfe\x0c\x00\x00\x01"
FAT_TWO = b"\xca\xfe\xba\xbe\x00\x00\x00\x02"
JAVA_CLASS = b"\xca\xfe\xba\xbe\x00\x00\x00\x34"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (THIN_ARM64, True),
        (b"\xce\xfa\xed\xfe\x07\x00\x00\x00", True),  # 32-bit
        (FAT_TWO, True),
        (JAVA_CLASS, False),
        (b"#!/bin/sh\n", False),
        (b"\xca\xfe", False),
    ],
)
def test_macho_detection(head: bytes, expected: bool) -> None:
    assert build.is_macho(head) is expected


def test_find_macho_skips_symlinks_and_text(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.so").write_bytes(FAT_TWO + b"rest")
    (tmp_path / "lib" / "a.py").write_text("print()")
    (tmp_path / "link.so").symlink_to(tmp_path / "lib" / "a.so")
    assert build.find_macho(tmp_path) == [tmp_path / "lib" / "a.so"]


def test_only_universal2_binaries_pass() -> None:
    outputs = {
        "Python": "x86_64 arm64\n",
        "_ssl.so": "arm64",
        "_yaml.so": "x86_64",
        "odd.so": "",
        "arm64e.so": "x86_64 arm64e",
    }
    assert build.not_universal(outputs) == [
        "_ssl.so: has arm64, lacks x86_64: not universal2",
        "_yaml.so: has x86_64, lacks arm64: not universal2",
        "arm64e.so: has arm64e x86_64, lacks arm64: not universal2",
        "odd.so: has nothing, lacks arm64 and x86_64: not universal2",
    ]
    assert build.not_universal({"Python": "x86_64 arm64"}) == []


def test_the_other_half_of_a_thin_binary_comes_from_the_matching_wheel() -> None:
    assert build.fuse_platform(frozenset({"arm64"})) == "macosx_11_0_x86_64"
    assert build.fuse_platform(frozenset({"x86_64"})) == "macosx_11_0_arm64"
    with pytest.raises(ValueError, match="cannot fuse"):
        build.fuse_platform(frozenset({"i386"}))
    argv = build.pip_download_argv(Path("/py"), Path("/one.txt"), "macosx_11_0_x86_64", "3.14", Path("/d"))
    assert argv[-2:] == ["-r", "/one.txt"]
    assert argv[argv.index("--only-binary") : argv.index("--only-binary") + 2] == ["--only-binary", ":all:"]
    assert "--no-deps" in argv and "--require-hashes" in argv and "macosx_11_0_x86_64" in argv
    assert argv[argv.index("--python-version") + 1] == "3.14"


def test_binaries_are_found_through_each_distributions_record(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    (site / "fast").mkdir(parents=True)
    (site / "fast" / "_core.so").write_bytes(THIN_ARM64)
    (site / "fast" / "__init__.py").write_text("")
    info = site / "fast-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: Fast\nVersion: 1.0\n")
    (info / "RECORD").write_text("fast/__init__.py,,\nfast/_core.so,sha256=x,1\n../../bin/fast,,\n")
    pure = site / "pure-2.0.dist-info"
    pure.mkdir()
    (pure / "METADATA").write_text("Name: pure\nVersion: 2.0\n")
    (pure / "RECORD").write_text("pure.py,,\n")
    assert build.binaries_by_distribution(site) == {("fast", "1.0"): ["fast/_core.so"]}


def test_wheel_binaries_are_read_by_content(tmp_path: Path) -> None:
    wheel = tmp_path / "fast-1.0-cp311-cp311-macosx_11_0_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("fast/_core.so", b"\xcf\xfa\xed\xfe\x07\x00\x00\x01")
        zf.writestr("fast/__init__.py", "")
    assert list(build.wheel_binaries(wheel)) == ["fast/_core.so"]


def test_dependencies_install_from_the_lock_with_hashes_and_our_wheel_alone(tmp_path: Path) -> None:
    deps, ours = build.install_argvs(Path("/py"), Path("/lock"), Path("/w/bootstrapper-1-py3-none-any.whl"))
    assert {"--require-hashes", "--only-binary=:all:", "--no-deps"} <= set(deps) and deps[-2:] == [
        "-r",
        "/lock",
    ]
    assert {"--no-deps", "--no-index"} <= set(ours) and ours[-1].endswith(".whl")
    assert all(argv[1] == "-I" for argv in (deps, ours))


def test_a_download_with_other_bytes_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "python-3.14.8-macos11.pkg"
    file.write_bytes(b"xar!")
    good = "0" * 64
    with pytest.raises(UsageError, match=r"python-3\.14\.8-macos11\.pkg: sha256 .* is not the pinned"):
        build.check_sha256(file, good)
    build.check_sha256(file, __import__("hashlib").sha256(b"xar!").hexdigest())


def test_relocatable_python_reads_only_the_checked_installer(tmp_path: Path) -> None:
    from pkg.tooling import pins

    pin = pins.load()
    argv = build.relocatable_python_argv(tmp_path / "tool", pin, tmp_path / "dl", tmp_path / "dest")
    base = argv[argv.index("--baseurl") + 1]
    os_version = argv[argv.index("--os-version") + 1]
    # relocatable-python formats the base URL with (version, version, os version)
    where = base % (pin.python_version, pin.python_version, os_version)
    assert where == f"file://{tmp_path}/dl/{pin.python_version}/python-{pin.python_version}-macos11.pkg"


def test_bundles_in_the_payload_are_made_non_relocatable() -> None:
    analyzed = [
        {
            "RootRelativeBundlePath": "Library/bootstrapper/Python.framework",
            "BundleIsRelocatable": True,
            "ChildBundles": [{"RootRelativeBundlePath": "x/Python.app", "BundleIsRelocatable": True}],
        }
    ]
    fixed = plistlib.loads(build.non_relocatable(plistlib.dumps(analyzed)))
    assert fixed[0]["BundleIsRelocatable"] is False
    assert fixed[0]["ChildBundles"][0]["BundleIsRelocatable"] is False
    assert fixed[0]["BundleOverwriteAction"] == "upgrade"


def test_signing_goes_inside_out() -> None:
    version = Path("/r/Python.framework/Versions/3.11")
    machos = [
        version / "Python",
        version / "bin" / "python3.11",
        version / "lib" / "python3.11" / "lib-dynload" / "_ssl.so",
        version / "Resources" / "Python.app" / "Contents" / "MacOS" / "Python",
    ]
    order = build.signing_order(machos, version)
    assert order == [
        version / "lib" / "python3.11" / "lib-dynload" / "_ssl.so",
        version / "bin" / "python3.11",
        version / "Resources" / "Python.app",
        version,
    ]


def test_codesign_argv_for_ad_hoc_and_developer_id() -> None:
    assert build.codesign_argv("-", Path("/x")) == ["/usr/bin/codesign", "--force", "--sign", "-", "/x"]
    argv = build.codesign_argv("Developer ID Application: Example (TEAM)", Path("/x"))
    assert argv[2:4] == ["--options", "runtime"] and "--timestamp" in argv
    assert "--entitlements" not in argv
    argv = build.codesign_argv("-", Path("/x"), entitlements=build.ENTITLEMENTS, ident="org.x.launcher")
    assert argv[argv.index("--entitlements") + 1] == str(build.ENTITLEMENTS)
    assert argv[argv.index("--identifier") + 1] == "org.x.launcher"
    assert build.verify_argvs([Path("/x")]) == [
        ["/usr/bin/codesign", "--verify", "--strict", "--verbose=2", "/x"]
    ]
    assert build.check_signature_argv(Path("/p.pkg")) == ["/usr/sbin/pkgutil", "--check-signature", "/p.pkg"]


def test_entitlements_go_on_the_interpreter_and_python_app_only() -> None:
    version = Path("/r/Python.framework/Versions/3.14")
    assert build.needs_entitlements(version / "bin" / "python3.14", version)
    assert build.needs_entitlements(version / "Resources" / "Python.app", version)
    assert not build.needs_entitlements(version / "lib" / "libssl.3.dylib", version)
    assert not build.needs_entitlements(version, version)


def test_entitlements_are_python_orgs_hardened_runtime_exceptions() -> None:
    granted = plistlib.loads(build.ENTITLEMENTS.read_bytes())
    assert granted == {
        "com.apple.security.automation.apple-events": True,
        "com.apple.security.cs.allow-dyld-environment-variables": True,
        "com.apple.security.cs.disable-executable-page-protection": True,
        "com.apple.security.cs.disable-library-validation": True,
    }
    # never the debugging ones: get-task-allow would let any admin process attach to the root daemon
    assert "com.apple.security.get-task-allow" not in granted


def test_package_tool_argv(tmp_path: Path) -> None:
    payload = Payload(tmp_path / "pkg")
    argv = build.pkgbuild_argv(payload, tmp_path / "c.plist", "1.2.3", tmp_path / "comp.pkg")
    assert argv[0] == "/usr/bin/pkgbuild"
    pairs = dict(zip(argv[1:-1:2], argv[2:-1:2], strict=True))
    assert pairs == {
        "--root": str(payload.root),
        "--scripts": str(payload.scripts),
        "--component-plist": str(tmp_path / "c.plist"),
        "--identifier": PACKAGE_ID,
        "--version": "1.2.3",
        "--install-location": "/",
        "--ownership": "recommended",
    }
    assert build.productbuild_argv(payload, tmp_path / "o.pkg") == [
        "/usr/bin/productbuild",
        "--distribution",
        str(payload.distribution),
        "--package-path",
        str(payload.base),
        str(tmp_path / "o.pkg"),
    ]
    assert build.productsign_argv("Developer ID Installer: E (T)", Path("/u.pkg"), Path("/s.pkg"), "k") == [
        "/usr/bin/productsign",
        "--sign",
        "Developer ID Installer: E (T)",
        "--timestamp",
        "--keychain",
        "k",
        "/u.pkg",
        "/s.pkg",
    ]
    submit, staple = build.notarize_argvs("notary", Path("/s.pkg"))
    assert submit[:3] == ["/usr/bin/xcrun", "notarytool", "submit"] and "--wait" in submit
    assert staple == ["/usr/bin/xcrun", "stapler", "staple", "/s.pkg"]


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the message shown off macOS")
@pytest.mark.parametrize("command", ["pkg", "mac-smoke"])
def test_mac_only_targets_stop_with_one_line_elsewhere(command: str) -> None:
    with pytest.raises(UsageError, match="needs macOS"):
        build.require_macos()
    done = subprocess.run(
        [sys.executable, str(REPO / "pkg" / "build.py"), command], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: make ")
    assert "Traceback" not in done.stderr


def test_trimming_removes_build_tools_and_keeps_the_runtime(tmp_path: Path) -> None:
    version = tmp_path / "Versions" / "3.11"
    site = version / "lib" / "python3.11" / "site-packages"
    keep = [
        site / "httpx" / "__init__.py",
        version / "bin" / "python3.11",
        version / "lib" / "libssl.3.dylib",
    ]
    drop = [
        site / "pip" / "__init__.py",
        site / "pip-24.0.dist-info" / "RECORD",
        site / "wheel" / "__init__.py",
        version / "lib" / "python3.11" / "test" / "test_os.py",
        version / "lib" / "python3.11" / "lib-dynload" / "_tkinter.cpython-311-darwin.so",
        version / "lib" / "libtcl8.6.dylib",
        version / "bin" / "idle3.11",
    ]
    for file in keep + drop:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text("x")
    build.trim(version)
    assert all(f.exists() for f in keep)
    assert not any(f.exists() for f in drop)


MACOS_DATA = Path(__file__).resolve().parents[1] / "data" / "macos"


def test_the_python_installer_must_be_signed_by_the_pinned_team() -> None:
    notarized = (MACOS_DATA / "pkgutil-check-signature-devid-notarized-nudge-partial.txt").read_text()
    build.check_installer_team(notarized, "9GQZ7KUFR6", "python.pkg")  # the recorded signer: accepted
    with pytest.raises(UsageError, match=r"python\.pkg: signed by Developer ID Installer: Clever DevOps"):
        build.check_installer_team(notarized, "BMM5U3QVKW", "python.pkg")
    unsigned = (MACOS_DATA / "pkgutil-check-signature-no-signature.txt").read_text()
    with pytest.raises(
        UsageError, match=r"not the pinned team BMM5U3QVKW \(pkg/pins\.toml python\.team_id\)"
    ):
        build.check_installer_team(unsigned, "BMM5U3QVKW", "python.pkg")


def test_check_sha256_refuses_other_bytes(tmp_path: Path) -> None:
    file = tmp_path / "python.pkg"
    file.write_bytes(b"abc")
    build.check_sha256(file, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    with pytest.raises(UsageError, match=r"python\.pkg: sha256 ba7816bf.* is not the pinned 0{64}"):
        build.check_sha256(file, "0" * 64)
