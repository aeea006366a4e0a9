"""The macOS parsers on real recorded outputs (tests/data/macos/)."""

from __future__ import annotations

import plistlib

import pytest

from bootstrapper.errors import PlatformError
from bootstrapper.platform.launchctl import parse_launchctl_print
from bootstrapper.platform.macos import (
    InstallerOutput,
    console_from_scutil,
    console_from_stat,
    parse_pkg_info_plist,
    parse_scutil,
)
from tests.support.fake_macos import recording


def _feed(name: str) -> tuple[InstallerOutput, list[tuple[float, str]]]:
    out = InstallerOutput()
    events = [e for line in recording(name).splitlines() if (e := out.feed(line)) is not None]
    return out, events


def test_installer_success_transcript() -> None:
    out, events = _feed("installer-verboseR-success-vscode-via-jamf.txt")
    assert out.succeeded and out.action == "install"
    assert out.package_name == "Microsoft-Visual Studio Code-1.66.2"
    percents = [p for p, _ in events]
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert (4.533645, "Configuring the installation") in events
    assert (97.262500, "Validating packages") in events
    assert out.phases[0] == "Preparing for installation"
    assert out.phases[-1] == "The software was successfully installed."
    assert "Writing files" in out.phases and len(out.phases) == len(set(out.phases))


def test_installer_failure_transcript_keeps_the_reason() -> None:
    out, events = _feed("installer-verboseR-failure-virtualbox.txt")
    assert not out.succeeded
    assert out.reason == (
        "The Installer encountered an error that caused the installation to fail. "
        "Contact the software manufacturer for assistance."
    )
    assert events[-1] == (97.75, "Validating packages")
    assert "Running package scripts" in out.phases


def test_installer_localized_and_prefixed_transcript() -> None:
    out, events = _feed("installer-verboseR-localized-de-via-brew.txt")
    assert out.action == "upgrade" and out.package_name == "Oracle VM VirtualBox"
    assert out.phases[:2] == ["Installation vorbereiten", "Volume vorbereiten"]
    assert "\u201eOracle VM VirtualBox\u201c vorbereiten" in out.phases
    assert events[-1] == (63.752624, "Dateien schreiben")
    assert not out.succeeded and out.reason == ""


def test_installer_terse_upgrade_failure_inside_a_wrapper_line() -> None:
    out, _ = _feed("installer-terse-upgrade-failed-xquartz.txt")
    assert out.package_name == "XQuartz 2.7.4" and out.action == "upgrade"
    assert not out.succeeded and out.reason.startswith("The Installer encountered an error")


def _plist(fields: dict[str, object]) -> str:
    return plistlib.dumps(fields).decode()


@pytest.mark.parametrize(
    ("name", "pkgid", "version", "location"),
    [
        ("pkgutil-pkg-info-chefdk.txt", "com.getchef.pkg.chefdk", "0.2.0", "opt/chefdk"),
        ("pkgutil-pkg-info-desktoppr-empty-location.txt", "com.scriptingosx.desktoppr", "0.5-218", ""),
        (
            "pkgutil-pkg-info-version-trailing-dash.txt",
            "com.scriptingosx.swift-prefs-tools",
            "0.1-",
            "usr/local/bin/",
        ),
        ("pkgutil-pkg-info-version-0-container.txt", "com.apple.container-installer", "0", None),
    ],
)
def test_recorded_receipt_fields_survive_the_plist_parser(
    name: str, pkgid: str, version: str, location: str | None
) -> None:
    """The recorded `--pkg-info` facts, given back as `--pkg-info-plist` (junk first) as pkgutil does."""
    fields = dict(
        line.split(":", 1)
        for line in recording(name).splitlines()
        if ":" in line and " " not in line.split(":")[0]
    )
    assert fields["package-id"].strip() == pkgid and fields["version"].strip() == version
    if location is not None:
        assert fields["location"].strip() == location.strip()
    data = {
        "pkgid": pkgid,
        "pkg-version": version,
        "install-location": location or "",
        "volume": "/",
        "install-time": 1,
    }
    receipt = parse_pkg_info_plist("objc[42]: Class X is implemented in both …\n" + _plist(data), pkgid)
    assert receipt is not None
    assert (receipt.pkgid, receipt.version, receipt.location, receipt.volume) == (
        pkgid,
        version,
        location or "",
        "/",
    )


def test_receipt_plist_tab_indented_with_groups() -> None:
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0">\n<dict>\n'
        "\t<key>groups</key>\n\t<array>\n\t\t<string>com.apple.FindSystemFiles.pkg-group</string>\n\t</array>\n"
        "\t<key>install-location</key>\n\t<string>/</string>\n\t<key>install-time</key>\n\t<integer>1406598641</integer>\n"
        "\t<key>pkg-version</key>\n\t<string>2022.9.30-1</string>\n\t<key>pkgid</key>\n\t<string>com.x</string>\n"
        "\t<key>receipt-plist-version</key>\n\t<real>1</real>\n\t<key>volume</key>\n\t<string>/</string>\n"
        "</dict>\n</plist>\n"
    )
    receipt = parse_pkg_info_plist(text, "com.x")
    assert receipt is not None and receipt.version == "2022.9.30-1" and receipt.install_time == 1406598641
    assert receipt.groups == ("com.apple.FindSystemFiles.pkg-group",)


@pytest.mark.parametrize("period", ["", "."])
def test_no_receipt_message_with_or_without_a_period(period: str) -> None:
    text = recording("pkgutil-no-receipt.txt").strip() + period
    assert parse_pkg_info_plist(text, "com.apple.pkg.CLTools_Executables") is None


def test_garbage_instead_of_a_receipt_is_a_clear_error() -> None:
    with pytest.raises(PlatformError, match=r"pkgutil printed no receipt plist for com\.x"):
        parse_pkg_info_plist("something else entirely", "com.x")


def test_scutil_logged_in_uses_the_on_console_session() -> None:
    parsed = parse_scutil(recording("scutil-consoleuser-logged-in.txt"))
    assert parsed["UID"] == "501" and parsed["SessionInfo"][0]["kCGSessionLongUserNameKey"] == "Erik Berglund"
    answer = console_from_scutil(recording("scutil-consoleuser-logged-in.txt"))
    assert (answer.decided, answer.name, answer.uid, answer.gid) == (True, "erikberglund", 501, 20)


def test_scutil_at_the_login_window_means_nobody() -> None:
    answer = console_from_scutil(recording("scutil-consoleuser-loginwindow-partial.txt"))
    assert answer.decided and answer.name == "" and answer.uid is None


def test_scutil_top_level_name_is_not_trusted_without_an_on_console_session() -> None:
    answer = console_from_scutil(recording("scutil-consoleuser-redacted-partial.txt"))
    assert not answer.decided, "top-level Name 'patrick' is not the on-console user (UID 502)"


def test_stat_console_answer() -> None:
    assert console_from_stat("alice:502:20\n").name == "alice"
    assert not console_from_stat("").decided


def test_launchctl_print_of_a_loaded_service() -> None:
    info = parse_launchctl_print(
        recording("launchctl-print-user-service-partial.txt"), "user/501/com.apple.iCloudHelper"
    )
    assert info.state == "not running" and info.last_exit_code == "0"
    assert info.properties["runs"] == "882" and info.properties["domain"] == "user/501"
    assert info.path is not None and info.path.endswith("com.apple.iCloudHelper.xpc")
    assert "PATH" not in info.properties, "nested blocks are not top-level properties"
