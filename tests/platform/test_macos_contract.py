"""MacOSPlatform against fake executables that answer with real recordings; every argv is asserted."""

from __future__ import annotations

import asyncio
import plistlib
from pathlib import Path

import pytest

from bootstrapper.errors import InstallError, LaunchdError, PlatformError, ServiceNotLoadedError
from bootstrapper.manifest.facts import Facts
from bootstrapper.platform.base import ConsoleUser, Platform
from bootstrapper.platform.macos import MacOSPlatform
from tests.support.fake_macos import FakeMac, recording
from tests.support.pkgwriter import build_component_pkg


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_it_is_a_platform(mac: MacOSPlatform) -> None:
    assert isinstance(mac, Platform)


def test_facts_native_arch_version_model_serial(mac: MacOSPlatform, fake: FakeMac) -> None:
    assert run(mac.facts()) == Facts(
        arch="arm64", os_version="14.6.1", model="Mac15,3", serial="C02FAKE0SERIAL"
    )
    assert fake.calls() == [
        ["-in", "hw.optional.arm64"],
        ["-in", "sysctl.proc_translated"],
        ["-productVersion"],
        ["-n", "hw.model"],
        ["-c", "IOPlatformExpertDevice", "-d", "2", "-a"],
    ]


def test_facts_under_rosetta_report_the_native_arch(mac: MacOSPlatform, fake: FakeMac) -> None:
    fake.answer("sysctl", ["-in", "hw.optional.arm64"], "1\n")
    fake.answer("sysctl", ["-in", "sysctl.proc_translated"], "1\n")
    assert run(mac.facts()).arch == "arm64"


def test_facts_on_intel(mac: MacOSPlatform, fake: FakeMac) -> None:
    fake.answer("sysctl", ["-in", "hw.optional.arm64"], "")
    fake.answer("sysctl", ["-in", "sysctl.proc_translated"], "")
    assert run(mac.facts()).arch == "x86_64"


def test_console_user_from_the_on_console_session(mac: MacOSPlatform, fake: FakeMac) -> None:
    user = run(mac.console_user())
    assert user == ConsoleUser("erikberglund", 501, 20, Path("/Users/erikberglund"))
    (call,) = fake.records()
    assert (
        call["tool"] == "scutil" and call["argv"] == [] and call["stdin"] == "show State:/Users/ConsoleUser\n"
    )


def test_console_user_at_the_login_window_is_nobody(mac: MacOSPlatform, fake: FakeMac) -> None:
    fake.answer("scutil", [], recording("scutil-consoleuser-loginwindow-partial.txt"))
    assert run(mac.console_user()) is None
    assert fake.calls("stat") == [], "scutil gave a definite answer: no fallback"


def test_console_user_falls_back_to_stat_when_scutil_cannot_tell(mac: MacOSPlatform, fake: FakeMac) -> None:
    fake.answer("scutil", [], recording("scutil-consoleuser-redacted-partial.txt"))
    fake.answer("stat", ["-f", "%Su:%u:%g", "/dev/console"], "erikberglund:501:20\n")
    user = run(mac.console_user())
    assert user is not None and (user.name, user.uid) == ("erikberglund", 501)
    assert fake.calls("stat") == [["-f", "%Su:%u:%g", "/dev/console"]]


@pytest.mark.parametrize("who", ["loginwindow", "_mbsetupuser", "root"])
def test_system_accounts_on_the_console_mean_nobody(mac: MacOSPlatform, fake: FakeMac, who: str) -> None:
    fake.answer("scutil", [], "scutil broke\n", rc=1)
    fake.answer("stat", ["-f", "%Su:%u:%g", "/dev/console"], f"{who}:0:0\n")
    assert run(mac.console_user()) is None


def test_install_reports_progress_and_the_restart_the_package_asks_for(
    mac: MacOSPlatform, fake: FakeMac, tmp_path: Path
) -> None:
    pkg = build_component_pkg(
        tmp_path / "r.pkg", "com.example.r", "1", {"a": b"a"}, postinstall_action="restart"
    )
    seen: list[tuple[float, str]] = []
    result = run(mac.install_pkg(pkg, lambda p, s: seen.append((p, s)), timeout=60))
    assert fake.calls("installer") == [["-verboseR", "-pkg", str(pkg), "-target", "/"]]
    assert seen[0] == (0.0, "Preparing for installation") and seen[-1][0] == 100.0
    assert result.action == "install" and result.restart_required and result.identifiers == ("com.example.r",)
    assert "Writing files" in result.phases


def test_install_failure_carries_exit_code_and_reason(
    mac: MacOSPlatform, fake: FakeMac, tmp_path: Path
) -> None:
    pkg = tmp_path / "VirtualBox.pkg"
    pkg.write_bytes(b"")
    fake.answer(
        "installer",
        ["-verboseR", "-pkg", str(pkg), "-target", "/"],
        recording("installer-verboseR-failure-virtualbox.txt"),
        rc=1,
    )
    with pytest.raises(
        InstallError, match=r"installer failed on VirtualBox\.pkg \(exit 1\): The Installer encountered"
    ) as err:
        run(mac.install_pkg(pkg, timeout=60))
    assert err.value.returncode == 1
    assert err.value.reason.startswith("The Installer encountered an error")
    assert "installer:%97.750000" in err.value.tail


def test_receipt_forget_and_no_receipt(mac: MacOSPlatform, fake: FakeMac, tmp_path: Path) -> None:
    pkg = build_component_pkg(
        tmp_path / "c.pkg", "com.example.c", "2.0-1", {"x": b"x"}, install_location="/opt/c/"
    )
    run(mac.install_pkg(pkg, timeout=60))
    receipt = run(mac.receipt("com.example.c"))
    assert receipt is not None and (receipt.version, receipt.location, receipt.volume) == (
        "2.0-1",
        "opt/c/",
        "/",
    )
    assert run(mac.forget_receipt("com.example.c")) is True
    assert run(mac.receipt("com.example.c")) is None
    assert run(mac.forget_receipt("com.example.c")) is False
    assert fake.calls("pkgutil") == [
        ["--pkg-info-plist", "com.example.c"],
        ["--forget", "com.example.c"],
        ["--pkg-info-plist", "com.example.c"],
        ["--forget", "com.example.c"],
    ]


def test_recorded_no_receipt_message_without_period(mac: MacOSPlatform, fake: FakeMac) -> None:
    pid = "com.apple.pkg.CLTools_Executables"
    fake.answer("pkgutil", ["--pkg-info-plist", pid], recording("pkgutil-no-receipt.txt"), rc=1)
    assert run(mac.receipt(pid)) is None


def test_a_package_id_that_looks_like_an_option_is_refused(mac: MacOSPlatform, fake: FakeMac) -> None:
    with pytest.raises(PlatformError, match="invalid package id '--volume'"):
        run(mac.receipt("--volume"))
    assert fake.calls() == []


def _plist(folder: Path, label: str) -> Path:
    path = folder / f"{label}.plist"
    path.write_bytes(plistlib.dumps({"Label": label, "ProgramArguments": ["/usr/bin/true"]}))
    return path


def test_bootstrap_is_idempotent(mac: MacOSPlatform, fake: FakeMac, tmp_path: Path) -> None:
    plist = _plist(tmp_path, "org.example.d")
    assert run(mac.bootstrap("system", plist)) is True
    assert run(mac.bootstrap("system", plist)) is False, "exit 5 and loaded = already loaded"
    assert fake.calls("launchctl") == [
        ["bootstrap", "system", str(plist)],
        ["bootstrap", "system", str(plist)],
        ["print", "system/org.example.d"],
    ]


def test_bootstrap_invalid_plist_133_is_a_clear_error(
    mac: MacOSPlatform, fake: FakeMac, tmp_path: Path
) -> None:
    plist = _plist(tmp_path, "homebrew.mxcl.ntp")
    fake.answer("launchctl", ["bootstrap", "system", str(plist)], f"{plist}: Invalid property list\n", rc=133)
    with pytest.raises(LaunchdError, match=r"invalid property list \(launchctl bootstrap exit 133\)") as err:
        run(mac.bootstrap("system", plist))
    assert err.value.returncode == 133


def test_bootout_of_what_is_not_loaded_succeeds(mac: MacOSPlatform, fake: FakeMac) -> None:
    assert run(mac.bootout("gui/501", "org.example.agent")) is False
    fake.set_loaded("gui/501/org.example.agent")
    assert run(mac.bootout("gui/501", "org.example.agent")) is True
    assert fake.calls("launchctl") == [["bootout", "gui/501/org.example.agent"]] * 2


def test_bootout_no_such_process_3_also_means_not_loaded(mac: MacOSPlatform, fake: FakeMac) -> None:
    fake.answer("launchctl", ["bootout", "system/org.x"], "Boot-out failed: 3: No such process\n", rc=3)
    assert run(mac.bootout("system", "org.x")) is False


def test_kickstart_of_a_missing_service_is_not_loaded(mac: MacOSPlatform, fake: FakeMac) -> None:
    fake.answer(
        "launchctl",
        ["kickstart", "gui/501/ai.hermes.gateway"],
        recording("launchctl-kickstart-gui-not-found-113.txt"),
        rc=113,
    )
    with pytest.raises(ServiceNotLoadedError, match=r"gui/501/ai\.hermes\.gateway is not loaded"):
        run(mac.kickstart("gui/501", "ai.hermes.gateway"))
    fake.set_loaded("system/org.x")
    run(mac.kickstart("system", "org.x", restart=True))
    assert fake.calls("launchctl")[-1] == ["kickstart", "-k", "system/org.x"]


def test_print_missing_in_either_domain_is_none(mac: MacOSPlatform, fake: FakeMac) -> None:
    fake.answer(
        "launchctl",
        ["print", "gui/501/software.toss.agent-runtime"],
        recording("launchctl-print-gui-not-found-113.txt"),
        rc=113,
    )
    assert run(mac.service("gui/501", "software.toss.agent-runtime")) is None
    assert run(mac.is_loaded("system", "com.openclaw.novnc")) is False
    fake.set_loaded("system/org.x")
    info = run(mac.service("system", "org.x"))
    assert info is not None and info.target == "system/org.x" and info.state == "not running"


def test_unknown_domain_is_refused(mac: MacOSPlatform) -> None:
    with pytest.raises(ValueError, match="launchd domain must be"):
        run(mac.bootout("user/501", "org.x"))


def test_start_agent_bootstraps_and_kickstarts_in_the_gui_domain(mac: MacOSPlatform, fake: FakeMac) -> None:
    plist = mac.paths.launch_agent_plist
    plist.parent.mkdir(parents=True)
    plist.write_bytes(plistlib.dumps({"Label": mac.paths.agent_label, "ProgramArguments": ["/usr/bin/true"]}))
    user = ConsoleUser("erikberglund", 501, 20, Path("/Users/erikberglund"))
    run(mac.start_agent(user))
    run(mac.start_agent(user, restart=True))  # a hung agent is replaced, not left alone
    assert fake.calls("launchctl") == [
        ["bootstrap", "gui/501", str(plist)],
        ["kickstart", f"gui/501/{mac.paths.agent_label}"],
        ["bootstrap", "gui/501", str(plist)],
        ["print", f"gui/501/{mac.paths.agent_label}"],  # already loaded (5), as print confirms
        ["kickstart", "-k", f"gui/501/{mac.paths.agent_label}"],
    ]


def test_run_as_user_goes_through_asuser_and_sudo(mac: MacOSPlatform, fake: FakeMac) -> None:
    user = ConsoleUser("erikberglund", 501, 20, Path("/Users/erikberglund"))
    result = run(mac.run_as_user(user, ["/bin/echo", "hi"], timeout=30, env={"A": "1"}))
    assert result.ok and result.tail.strip() == "hi"
    assert fake.calls("launchctl") == [
        [
            "asuser",
            "501",
            str(fake.bin / "sudo"),
            "-u",
            "erikberglund",
            "-H",
            "--",
            "/usr/bin/env",
            "A=1",
            "/bin/echo",
            "hi",
        ]
    ]
    assert fake.calls("sudo") == [
        ["-u", "erikberglund", "-H", "--", "/usr/bin/env", "A=1", "/bin/echo", "hi"]
    ]
    with pytest.raises(PlatformError, match="never run as root"):
        run(mac.run_as_user(ConsoleUser("root", 0, 0, Path("/var/root")), ["/bin/true"], timeout=5))


def test_reboot_and_logout(mac: MacOSPlatform, fake: FakeMac) -> None:
    run(mac.reboot())
    run(mac.logout(ConsoleUser("erikberglund", 501, 20, Path("/Users/erikberglund"))))
    assert fake.calls("shutdown") == [["-r", "now"]]
    assert fake.calls("launchctl") == [["bootout", "gui/501"]]
