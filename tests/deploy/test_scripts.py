"""preinstall / postinstall, rehearsed in a sandbox root with the fake launchctl, scutil and chown.

The console states are the real `scutil` recordings in tests/data/macos/; the fake launchctl
answers with the exit codes recorded from real Macs (113 for a service that is not loaded, 133 for a
broken plist).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bootstrapper.deploy.layout import folders
from bootstrapper.paths import Paths
from pkg.tooling.payload import Payload
from pkg.tooling.rehearse import AT_SETUP, LOGGED_IN, Sandbox, rehearse_all
from tests.deploy.conftest import FAKE
from tests.support import fake_launchctl

PATHS = Paths()
DAEMON = f"system/{PATHS.daemon_label}"
AGENT = f"gui/501/{PATHS.agent_label}"


@pytest.fixture
def box(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path / "mac", FAKE)


def install(box: Sandbox, payload: Payload, console: Path | None, target: str = "/") -> None:
    pre = box.run(payload, "preinstall", target=target, console=console)
    assert pre.returncode == 0, pre.output
    box.install(payload)


def console_with(tmp_path: Path, samples: Path, name: str, uid: str) -> Path:
    """The logged-in recording with another top-level user (loginwindow, _mbsetupuser, root)."""
    text = (samples / LOGGED_IN).read_text()
    text = text.replace("  Name : erikberglund", f"  Name : {name}").replace("  UID : 501", f"  UID : {uid}")
    file = tmp_path / f"console-{name}.txt"
    file.write_text(text)
    return file


def test_every_fleet_situation_passes(payload: Payload, tmp_path: Path, samples: Path) -> None:
    assert rehearse_all(payload, tmp_path, FAKE, samples) == []


def test_setup_assistant_starts_the_daemon_only(payload: Payload, box: Sandbox, samples: Path) -> None:
    install(box, payload, samples / AT_SETUP)
    post = box.run(payload, "postinstall", console=samples / AT_SETUP)
    assert post.returncode == 0, post.output
    assert post.launchctl == [
        ["bootout", DAEMON],
        ["enable", DAEMON],
        ["bootstrap", "system", f"{box.root}{PATHS.launch_daemon_plist}"],
    ]
    assert [c.rc for c in post.calls if c.tool == "launchctl"] == [113, 0, 0]
    assert box.loaded() == {DAEMON}
    assert "starts at the next login" in post.output


def test_a_logged_in_user_gets_the_agent_in_their_gui_domain(
    payload: Payload, box: Sandbox, samples: Path
) -> None:
    install(box, payload, samples / LOGGED_IN)
    post = box.run(payload, "postinstall", console=samples / LOGGED_IN)
    assert post.returncode == 0, post.output
    assert post.launchctl[-2:] == [
        ["enable", AGENT],
        ["bootstrap", "gui/501", f"{box.root}{PATHS.launch_agent_plist}"],
    ]
    assert box.loaded() == {DAEMON, AGENT}


@pytest.mark.parametrize(("name", "uid"), [("loginwindow", "0"), ("_mbsetupuser", "248"), ("root", "0")])
def test_no_agent_for_system_sessions(
    payload: Payload, box: Sandbox, samples: Path, tmp_path: Path, name: str, uid: str
) -> None:
    console = console_with(tmp_path, samples, name, uid)
    install(box, payload, console)
    post = box.run(payload, "postinstall", console=console)
    assert post.returncode == 0, post.output
    assert not [argv for argv in post.launchctl if any(a.startswith("gui/") for a in argv)]
    assert box.loaded() == {DAEMON}


def test_a_user_without_a_uid_line_gets_no_agent(payload: Payload, box: Sandbox, samples: Path) -> None:
    # The redacted recording is cut before the top-level UID: never guess a domain.
    console = samples / "scutil-consoleuser-redacted-partial.txt"
    install(box, payload, console)
    post = box.run(payload, "postinstall", console=console)
    assert post.returncode == 0, post.output
    assert box.loaded() == {DAEMON}


def test_an_upgrade_stops_the_old_jobs_before_the_files_change(
    payload: Payload, box: Sandbox, samples: Path
) -> None:
    box.preload([DAEMON, AGENT])
    pre = box.run(payload, "preinstall", console=samples / LOGGED_IN)
    assert pre.returncode == 0, pre.output
    assert pre.launchctl == [["bootout", DAEMON], ["bootout", AGENT]]
    assert [c.rc for c in pre.calls if c.tool == "launchctl"] == [0, 0]
    assert box.loaded() == set()


def test_postinstall_run_again_replaces_the_loaded_daemon(
    payload: Payload, box: Sandbox, samples: Path
) -> None:
    install(box, payload, samples / AT_SETUP)
    box.preload([DAEMON])  # e.g. an admin re-running the postinstall by hand
    post = box.run(payload, "postinstall", console=samples / AT_SETUP)
    assert post.returncode == 0, post.output
    assert post.launchctl[0] == ["bootout", DAEMON]
    assert box.loaded() == {DAEMON}


@pytest.mark.parametrize("target", ["/Volumes/Image", "", "/Volumes/Macintosh HD"])
def test_other_volumes_are_left_alone(payload: Payload, box: Sandbox, samples: Path, target: str) -> None:
    install(box, payload, samples / LOGGED_IN, target)
    post = box.run(payload, "postinstall", target=target, console=samples / LOGGED_IN)
    assert post.returncode == 0, post.output
    assert post.calls == []
    assert "is not the boot volume" in post.output
    assert not (box.root / "var").exists()


def test_folders_are_root_owned_with_tight_modes(payload: Payload, box: Sandbox, samples: Path) -> None:
    install(box, payload, samples / AT_SETUP)
    chowned = [
        c.argv for c in box.run(payload, "postinstall", console=samples / AT_SETUP).calls if c.tool == "chown"
    ]
    for folder in folders():
        where = box.root.joinpath(*folder.path.parts[1:])
        assert f"0{where.stat().st_mode & 0o777:o}" == folder.mode, folder.path
        assert ["root:wheel", str(where)] in chowned
    assert ["root:wheel", f"{box.root}{PATHS.launch_daemon_plist}"] in chowned


def test_a_planted_symlink_is_replaced_by_a_real_folder(
    payload: Payload, box: Sandbox, samples: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "attacker"
    elsewhere.mkdir()
    run_dir = box.root.joinpath(*PATHS.run_dir.parts[1:])
    run_dir.parent.mkdir(parents=True)
    run_dir.symlink_to(elsewhere)
    install(box, payload, samples / AT_SETUP)
    assert run_dir.is_dir() and not run_dir.is_symlink()
    assert run_dir.stat().st_mode & 0o777 == 0o755


def test_a_broken_daemon_plist_fails_the_install(payload: Payload, box: Sandbox, samples: Path) -> None:
    install(box, payload, samples / AT_SETUP)
    box.root.joinpath(*PATHS.launch_daemon_plist.parts[1:]).write_text("<plist><dict>")
    post = box.run(payload, "postinstall", console=samples / AT_SETUP)
    assert post.returncode == 1
    assert f"launchctl bootstrap system {box.root}{PATHS.launch_daemon_plist} exited 133" in post.output


def test_an_agent_that_cannot_start_does_not_fail_the_install(
    payload: Payload, box: Sandbox, samples: Path
) -> None:
    # The daemon runs, and launchd loads the agent at the next login anyway.
    install(box, payload, samples / LOGGED_IN)
    box.root.joinpath(*PATHS.launch_agent_plist.parts[1:]).write_text("not a plist")
    post = box.run(payload, "postinstall", console=samples / LOGGED_IN)
    assert post.returncode == 0
    assert post.calls[-1].rc == 133
    assert "exited 133; the agent starts at the next login" in post.output
    assert box.loaded() == {DAEMON}


def test_the_fake_answers_with_the_recorded_exit_codes(samples: Path) -> None:
    assert "exit status 113" in (samples / "launchctl-kickstart-gui-not-found-113.txt").read_text()
    assert fake_launchctl.NOT_FOUND == 113
    assert (
        "Invalid property list\nbash-3.2# echo $?\n133"
        in (samples / "launchctl-bootstrap-invalid-plist-133.txt").read_text()
    )
    assert fake_launchctl.INVALID_PLIST == 133
