"""The simulated Mac: real packages installed under a root prefix, scripts, receipts, launchd journal.

Package scripts in tests/data/pkgs/ are written for a real Mac and these tests may run as root: they
are never executed here (the kbox test swaps the runner for a recorder). Script execution is
tested with packages our writer builds.
"""

from __future__ import annotations

import asyncio
import os
import plistlib
import signal
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bootstrapper import process
from bootstrapper.errors import InstallError, LaunchdError, ServiceNotLoadedError
from bootstrapper.paths import Paths
from bootstrapper.platform.base import ConsoleUser, Platform
from bootstrapper.platform.sandbox import SCRIPT_FAILED, SandboxPlatform
from tests.support.pkgwriter import (
    CpioItem,
    XarSource,
    build_component_pkg,
    build_product_archive,
    write_cpio,
    write_xar,
)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


@pytest.fixture
def box(tmp_path: Path) -> SandboxPlatform:
    root = tmp_path / "root"
    root.mkdir()
    return SandboxPlatform(Paths(root=root), arch="arm64", os_version="14.6")


def test_it_is_a_platform(box: SandboxPlatform) -> None:
    assert isinstance(box, Platform)


@pytest.mark.parametrize(
    ("name", "pkgid", "version", "path", "size"),
    [
        (
            "sparkle-test.pkg",
            "org.sparkle-project.testpkg",
            "0",
            "tmp/sparklepkgtest.app/Contents/PkgInfo",
            8,
        ),
        (
            "installomator-10.3-signed.pkg",
            "com.scriptingosx.Installomator",
            "10.3",
            "usr/local/Installomator/Installomator.sh",
            313964,
        ),
        (
            "munkitools_launchd-3.0.3265.pkg",
            "com.googlecode.munki.launchd",
            "3.0.3265",
            "Library/LaunchDaemons/com.googlecode.munki.managedsoftwareupdate-check.plist",
            None,
        ),
        (
            "dockutil-3.0-product.pkg",
            "com.installapplicationsdemo.dockutil",
            "3.0",
            "Library/installapplications/dockutil",
            31433,
        ),
    ],
)
def test_real_packages_install_under_the_root(
    box: SandboxPlatform, pkgs: Path, name: str, pkgid: str, version: str, path: str, size: int | None
) -> None:
    seen: list[tuple[float, str]] = []
    result = run(box.install_pkg(pkgs / name, lambda p, s: seen.append((p, s))))
    placed = box.paths.root / path
    assert placed.is_file()
    if size is not None:
        assert placed.stat().st_size == size
    receipt = run(box.receipt(pkgid))
    assert receipt is not None and (receipt.pkgid, receipt.version, receipt.volume) == (pkgid, version, "/")
    assert abs(receipt.install_time - time.time()) < 60
    assert result.identifiers == (pkgid,) and result.action == "install"
    percents = [p for p, _ in seen]
    assert percents == sorted(percents) and seen[-1] == (100.0, "The software was successfully installed")
    assert "Writing files" in result.phases
    again = run(box.install_pkg(pkgs / name))
    assert again.action == "upgrade"


def test_restart_action_and_receipt_fields_like_pkgutil(box: SandboxPlatform, pkgs: Path) -> None:
    result = run(box.install_pkg(pkgs / "munkitools_launchd-3.0.3265.pkg"))
    assert result.postinstall_action == "restart" and result.restart_required
    data = plistlib.loads((box.paths.receipts_dir / "com.googlecode.munki.launchd.plist").read_bytes())
    assert set(data) == {
        "pkgid",
        "pkg-version",
        "install-location",
        "install-time",
        "volume",
        "receipt-plist-version",
    }
    assert data["install-location"] == ""
    run(box.install_pkg(pkgs / "installomator-10.3-signed.pkg"))
    receipt = run(box.receipt("com.scriptingosx.Installomator"))
    assert receipt is not None and receipt.location == "usr/local/Installomator/"


def test_the_executable_bit_survives(box: SandboxPlatform, pkgs: Path) -> None:
    run(box.install_pkg(pkgs / "installomator-10.3-signed.pkg"))
    mode = (box.paths.root / "usr/local/Installomator/Installomator.sh").stat().st_mode
    assert stat.S_IMODE(mode) == 0o755


def test_a_dangling_pkg_ref_fails_the_install(box: SandboxPlatform, pkgs: Path, tmp_path: Path) -> None:
    with pytest.raises(InstallError, match="this package runs on x86_64, not on this arm64 Mac"):
        run(box.install_pkg(pkgs / "fastlane-MacAppOnly.pkg"))
    intel = SandboxPlatform(Paths(root=tmp_path / "intel"), arch="x86_64", os_version="14.6")
    with pytest.raises(InstallError, match=r"com\.example\.Sample\.pkg, which is not in the archive") as err:
        run(intel.install_pkg(pkgs / "fastlane-MacAppOnly.pkg"))
    assert err.value.returncode == 1


def test_a_xar_that_is_no_package_fails_the_install(box: SandboxPlatform, pkgs: Path) -> None:
    with pytest.raises(InstallError, match="not a flat package"):
        run(box.install_pkg(pkgs / "homebrew-container-not-a-pkg.pkg"))


def test_kbox_postinstall_would_get_installers_arguments(
    box: SandboxPlatform, pkgs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real kbox script is read, never run: the runner is replaced by a recorder."""
    calls: list[dict[str, Any]] = []

    async def recorder(argv: list[str], **kwargs: Any) -> process.Completed:
        script = Path(argv[0])
        calls.append(
            {"argv": argv, "cwd": kwargs.get("cwd"), "env": kwargs.get("env"), "text": script.read_text()}
        )
        return process.Completed(argv, 0, "", 0.0)

    monkeypatch.setattr("bootstrapper.platform.sandbox.process.run", recorder)
    pkg = pkgs / "kbox-uninstall-scripts.pkg"
    run(box.install_pkg(pkg))
    (call,) = calls
    root = box.paths.root
    assert call["argv"][1:] == [str(pkg), str(root), str(root), "/"]
    assert Path(call["argv"][0]).name == "postinstall" and call["cwd"] == Path(call["argv"][0]).parent
    assert len(call["text"].encode()) == 1545
    assert call["env"]["SCRIPT_NAME"] == "postinstall" and call["env"]["DSTVOLUME"] == str(root)
    assert not Path(call["argv"][0]).exists(), "the unpacked scripts are removed afterwards"
    assert run(box.receipt("com.github.kace_kbox_1000_uninstall")) is not None


SCRIPT = """#!/bin/sh
{{ echo "$0"; echo "$1"; echo "$2"; echo "$3"; echo "$4"; echo "$SCRIPT_NAME"; \
ls "$2/payload.txt" 2>/dev/null || echo "no payload yet"; }} > "$3/{name}.out"
exit {rc}
"""


def test_scripts_run_with_installers_arguments_around_the_payload(
    box: SandboxPlatform, tmp_path: Path
) -> None:
    pkg = build_component_pkg(
        tmp_path / "s.pkg",
        "com.example.scripts",
        "1",
        {"payload.txt": b"x"},
        install_location="/opt/s",
        scripts={
            "preinstall": SCRIPT.format(name="pre", rc=0),
            "postinstall": SCRIPT.format(name="post", rc=0),
        },
    )
    run(box.install_pkg(pkg))
    root = box.paths.root
    pre = (root / "pre.out").read_text().splitlines()
    post = (root / "post.out").read_text().splitlines()
    assert pre[1:6] == [str(pkg), str(root / "opt/s"), str(root), "/", "preinstall"]
    assert pre[6] == "no payload yet"
    assert post[1:6] == [str(pkg), str(root / "opt/s"), str(root), "/", "postinstall"]
    assert post[6] == str(root / "opt/s/payload.txt")


def test_a_failing_postinstall_fails_the_install_without_a_receipt(
    box: SandboxPlatform, tmp_path: Path
) -> None:
    pkg = build_component_pkg(
        tmp_path / "f.pkg",
        "com.example.fail",
        "1",
        {"a": b"a"},
        scripts={"postinstall": "#!/bin/sh\necho broken >&2\nexit 3\n"},
    )
    with pytest.raises(InstallError, match=r"postinstall of com\.example\.fail exited with 3: broken") as err:
        run(box.install_pkg(pkg))
    assert (err.value.returncode, err.value.reason) == (1, SCRIPT_FAILED)
    assert run(box.receipt("com.example.fail")) is None


def test_pbzx_fixture_installs(box: SandboxPlatform, tmp_path: Path) -> None:
    data = os.urandom(100_000) + b"z" * 400_000
    pkg = build_component_pkg(
        tmp_path / "p.pkg",
        "com.example.pbzx",
        "1",
        {"Applications/P.app/blob": data},
        compression="pbzx",
        pbzx_chunk_size=128 * 1024,
    )
    run(box.install_pkg(pkg))
    assert (box.paths.root / "Applications/P.app/blob").read_bytes() == data
    assert run(box.receipt("com.example.pbzx")) is not None


def test_product_archive_installs_every_component(box: SandboxPlatform, tmp_path: Path) -> None:
    a = build_component_pkg(tmp_path / "a.pkg", "com.example.a", "1", {"a": b"a"})
    b = build_component_pkg(tmp_path / "b.pkg", "com.example.b", "2", {"b": b"b"}, install_location="/opt")
    result = run(box.install_pkg(build_product_archive(tmp_path / "ab.pkg", [a, b])))
    assert result.identifiers == ("com.example.a", "com.example.b")
    assert (box.paths.root / "a").exists() and (box.paths.root / "opt/b").exists()
    assert run(box.receipt("com.example.b")) is not None


def test_architecture_and_os_requirements_are_checked_like_installer(tmp_path: Path) -> None:
    comp = build_component_pkg(tmp_path / "c.pkg", "com.example.c", "1", {"c": b"c"})
    arm_only = build_product_archive(tmp_path / "arm.pkg", [comp], host_architectures=("arm64",))
    new_os = build_product_archive(tmp_path / "new.pkg", [comp], minimum_os="15.0")
    intel = SandboxPlatform(Paths(root=tmp_path / "intel"), arch="x86_64", os_version="14.6")
    with pytest.raises(InstallError, match="runs on arm64, not on this x86_64 Mac"):
        run(intel.install_pkg(arm_only))
    with pytest.raises(InstallError, match=r"needs macOS 15\.0 or later, this Mac has 14\.6"):
        run(intel.install_pkg(new_os))
    sequoia = SandboxPlatform(Paths(root=tmp_path / "arm"), arch="arm64", os_version="15.1")
    run(sequoia.install_pkg(arm_only))
    run(sequoia.install_pkg(new_os))


def test_a_hostile_package_writes_nothing(box: SandboxPlatform, tmp_path: Path) -> None:
    import gzip
    import io

    buf = io.BytesIO()
    write_cpio(buf, [CpioItem("./fine.txt", 0o100644, b"fine"), CpioItem("../../escape", 0o100644, b"x")])
    info = b'<pkg-info identifier="com.example.evil" version="1" install-location="/"/>'
    pkg = write_xar(
        tmp_path / "evil.pkg",
        [XarSource("PackageInfo", info), XarSource("Payload", gzip.compress(buf.getvalue()))],
    )
    with pytest.raises(InstallError, match="path traversal refused"):
        run(box.install_pkg(pkg))
    assert not (box.paths.root / "fine.txt").exists()
    assert not (tmp_path / "escape").exists()
    assert run(box.receipt("com.example.evil")) is None


def test_facts_default_to_this_machine_and_can_be_overridden(tmp_path: Path) -> None:
    import platform

    here = SandboxPlatform(Paths(root=tmp_path))
    facts = run(here.facts())
    assert facts.arch == ("arm64" if platform.machine() in ("arm64", "aarch64") else "x86_64")
    other = run(
        SandboxPlatform(
            Paths(root=tmp_path), arch="x86_64", os_version="13.6", model="MacBookPro16,1"
        ).facts()
    )
    assert (other.arch, other.os_version, other.model) == ("x86_64", "13.6", "MacBookPro16,1")
    with pytest.raises(ValueError, match="arch must be arm64 or x86_64"):
        SandboxPlatform(Paths(root=tmp_path), arch="ppc")


def test_console_user_appears_after_the_login_delay(tmp_path: Path) -> None:
    now = [100.0]
    box = SandboxPlatform(Paths(root=tmp_path), login_delay=5.0, clock=lambda: now[0])
    assert run(box.console_user()) is None
    now[0] = 105.0
    user = run(box.console_user())
    assert user is not None and user.uid == os.getuid()
    assert user.home == tmp_path / "Users" / user.name and user.home.is_dir()


def _plist(folder: Path, label: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{label}.plist"
    path.write_bytes(plistlib.dumps({"Label": label, "ProgramArguments": ["/usr/bin/true"]}))
    return path


def test_launchd_operations_are_journaled(box: SandboxPlatform) -> None:
    plist = _plist(box.paths.system("/Library/LaunchDaemons"), "org.example.d")
    assert run(box.bootstrap("system", plist)) is True
    assert run(box.bootstrap("system", plist)) is False
    assert run(box.is_loaded("system", "org.example.d"))
    run(box.kickstart("system", "org.example.d", restart=True))
    assert run(box.bootout("system", "org.example.d")) is True
    assert run(box.bootout("system", "org.example.d")) is False
    with pytest.raises(ServiceNotLoadedError) as err:
        run(box.kickstart("system", "org.example.d"))
    assert err.value.returncode == 113
    user = ConsoleUser("me", 501, 20, box.paths.system("/Users/me"))
    run(box.logout(user))
    run(box.reboot())
    ops = [(e["op"], e.get("result")) for e in box.journal()]
    assert ops == [
        ("bootstrap", "loaded"),
        ("bootstrap", "already loaded"),
        ("spawn", None),
        ("kickstart", "started"),
        ("bootout", "unloaded"),
        ("bootout", "not loaded"),
        ("kickstart", "not loaded"),
        ("bootout", "not loaded"),
        ("reboot", "recorded"),
    ]
    assert box.paths.launchd_journal.is_relative_to(box.paths.root)


def test_bootstrap_of_an_invalid_plist_is_a_clear_error(box: SandboxPlatform, tmp_path: Path) -> None:
    bad = tmp_path / "bad.plist"
    bad.write_text("<plist><dict><key>Label</key>")
    with pytest.raises(LaunchdError, match="invalid property list") as err:
        run(box.bootstrap("system", bad))
    assert err.value.returncode == 133


def test_logout_unloads_the_users_agents(box: SandboxPlatform) -> None:
    plist = _plist(box.paths.system("/Library/LaunchAgents"), "org.example.agent")
    run(box.bootstrap("gui/501", plist))
    run(box.logout(ConsoleUser("me", 501, 20, box.paths.system("/Users/me"))))
    assert not run(box.is_loaded("gui/501", "org.example.agent"))


def test_start_agent_bootstraps_and_kickstarts_the_installed_agent(tmp_path: Path) -> None:
    pidfile = tmp_path / "agent.pid"
    code = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    box = SandboxPlatform(Paths(root=tmp_path / "root"))
    plist = box.paths.launch_agent_plist
    plist.parent.mkdir(parents=True)
    definition = {"Label": box.paths.agent_label, "ProgramArguments": [sys.executable, "-c", code]}
    plist.write_bytes(plistlib.dumps(definition))
    user = run(box.console_user())
    assert user is not None
    run(box.start_agent(user))
    deadline = time.monotonic() + 10
    while not pidfile.exists() or not pidfile.read_text():
        assert time.monotonic() < deadline, "the agent did not start"
        time.sleep(0.05)
    pid = int(pidfile.read_text())
    try:
        spawn = [e for e in box.journal() if e["op"] == "spawn"]
        assert spawn[0]["pid"] == pid and spawn[0]["argv"] == [sys.executable, "-c", code]
        assert os.getsid(pid) == pid, "the agent leads its own session, like a launchd job"
        info = run(box.service(f"gui/{user.uid}", box.paths.agent_label))
        assert info is not None and info.pid == pid and info.state == "running"
        run(box.start_agent(user))  # already loaded and running: nothing new starts
        assert len([e for e in box.journal() if e["op"] == "spawn"]) == 1
    finally:
        os.kill(pid, signal.SIGKILL)


def test_default_agent_command_is_the_real_agent(tmp_path: Path) -> None:
    box = SandboxPlatform(Paths(root=tmp_path))
    assert box.agent_argv == [sys.executable, "-m", "bootstrapper", "agent", "--sandbox", str(tmp_path)]


def test_run_as_user_gets_the_users_home(box: SandboxPlatform) -> None:
    user = run(box.console_user())
    assert user is not None
    result = run(
        box.run_as_user(user, ["/bin/sh", "-c", 'echo "$HOME $USER $X"'], timeout=10, env={"X": "y"})
    )
    assert result.tail.strip() == f"{user.home} {user.name} y"
