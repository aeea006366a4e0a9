from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrapper.paths import Paths
from bootstrapper.progress.depnotify import DepNotifySink
from bootstrapper.progress.swiftdialog import SwiftDialogSink, launch_argv
from tests.engine.conftest import result, run_sandbox
from tests.progress.script import SCRIPT, SHOWN
from tests.support.site import Site, serve

# What a hostile name becomes: one line, markup kept as text, commas/colons replaced by look-alikes.
EVIL = SHOWN.replace(",", "\u201a").replace(":", "\u2236")
EVIL_DEP = SHOWN


def _play(sink: SwiftDialogSink | DepNotifySink) -> None:
    for event in SCRIPT:
        sink.handle(event)
    sink.close()


def test_swiftdialog_command_file_holds_exactly_the_expected_lines(tmp_path: Path) -> None:
    path = tmp_path / "dialog.log"
    _play(SwiftDialogSink(path))
    assert path.read_text().splitlines() == [
        "listitem: add, title: Preflight check, status: success, statustext: Done",
        "listitem: add, title: Chrome, status: pending, statustext: Pending",
        f"listitem: add, title: {EVIL}, status: pending, statustext: Pending",
        "listitem: add, title: Skipped on Intel, status: success, statustext: Skipped",
        "progress: 50",
        "progresstext: Starting",
        "listitem: title: Chrome, status: wait, statustext: Installing",
        "progresstext: Installing Chrome",
        "listitem: title: Chrome, status: wait, statustext: Downloading 0%",
        "listitem: title: Chrome, status: wait, statustext: Downloading 50%",
        "listitem: title: Chrome, status: wait, statustext: Downloading 100%",
        "listitem: title: Chrome, status: wait, statustext: Installing 40%",
        "listitem: title: Chrome, status: success, statustext: Done",
        "progress: 75",
        f"listitem: title: {EVIL}, status: wait, statustext: Running",
        f"progresstext: Running {EVIL}",
        f"listitem: title: {EVIL}, status: wait, statustext: Retrying (attempt 2)",
        f"listitem: title: {EVIL}, status: fail, statustext: exited with 3\u2236 boom\u201a badly",
        "progress: 100",
        "progress: 100",
        "progresstext: Setup could not finish: 1 item failed",
        "quit:",
    ]
    assert path.stat().st_mode & 0o777 == 0o644


def test_swiftdialog_launch_argv_lists_the_items_and_resync_restates_them(tmp_path: Path) -> None:
    path = tmp_path / "dialog.log"
    sink = SwiftDialogSink(path, quit_at_end=False)
    for event in SCRIPT[:9]:
        sink.handle(event)
    argv = sink.launch_argv()
    assert argv[:3] == ["/usr/local/bin/dialog", "--commandfile", str(path)]
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--listitem"] == [
        "Preflight check",
        "Chrome",
        EVIL,
        "Skipped on Intel",
    ]
    before = len(path.read_text().splitlines())
    sink.resync()
    assert path.read_text().splitlines()[before:] == [
        "listitem: title: Preflight check, status: success, statustext: Done",
        "listitem: title: Chrome, status: success, statustext: Done",
        f"listitem: title: {EVIL}, status: pending, statustext: Pending",
        "listitem: title: Skipped on Intel, status: success, statustext: Skipped",
        "progress: 75",
    ]
    sink.close()


def test_swiftdialog_duplicate_names_get_distinct_titles(tmp_path: Path) -> None:
    assert launch_argv(tmp_path / "d", ["a,b"], title="T\nx")[4] == "T x"
    from bootstrapper.engine.events import PlannedStep, RunStarted

    path = tmp_path / "dialog.log"
    sink = SwiftDialogSink(path)
    sink.handle(
        RunStarted(
            "r", "m", 2, 1, (PlannedStep("a", "Same", "wait", "u"), PlannedStep("b", "Same", "wait", "u"))
        )
    )
    sink.close()
    assert path.read_text().splitlines()[:2] == [
        "listitem: add, title: Same, status: pending, statustext: Pending",
        "listitem: add, title: Same (2), status: pending, statustext: Pending",
    ]


def test_depnotify_command_file_holds_exactly_the_expected_lines(tmp_path: Path) -> None:
    path = tmp_path / "depnotify.log"
    _play(DepNotifySink(path))
    assert path.read_text().splitlines() == [
        "Command: DeterminateManual: 4",
        "Command: DeterminateManualStep: 2",
        "Status: Preparing your Mac",
        "Status: Installing Chrome",
        "Command: DeterminateManualStep: 1",
        f"Status: Running {EVIL_DEP}",
        f"Status: Retrying {EVIL_DEP} (attempt 2)",
        f"Status: {EVIL_DEP} failed",
        "Command: DeterminateManualStep: 1",
        "Status: Setup could not finish: 1 item failed",
        "Command: Quit",
    ]


def test_stale_commands_from_a_previous_attempt_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "depnotify.log"
    path.write_text("Command: Quit\n")
    sink = DepNotifySink(path)
    sink.close()
    assert path.read_text() == ""


@pytest.mark.parametrize("sink_class", [SwiftDialogSink, DepNotifySink])
def test_symlink_planted_at_the_command_file_is_replaced_not_followed(
    tmp_path: Path, sink_class: type[SwiftDialogSink | DepNotifySink]
) -> None:
    victim = tmp_path / "sudoers"
    victim.write_text("root ALL=(ALL) ALL\n")
    planted = tmp_path / "cmd.log"
    os.symlink(victim, planted)
    _play(sink_class(planted))
    assert victim.read_text() == "root ALL=(ALL) ALL\n"
    assert not planted.is_symlink()
    assert len(planted.read_text().splitlines()) > 5


@pytest.mark.parametrize("sink_class", [SwiftDialogSink, DepNotifySink])
def test_unsafe_command_file_folder_turns_the_sink_off_with_one_warning(
    tmp_path: Path, sink_class: type[SwiftDialogSink | DepNotifySink], caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "tmp"
    folder.mkdir()
    folder.chmod(0o777)  # world-writable without the sticky bit: anyone could swap the file
    with caplog.at_level(logging.WARNING):
        sink = sink_class(folder / "cmd.log")
        _play(sink)
    assert [r.getMessage() for r in caplog.records] == [
        f"progress window updates are off: command file {folder}: can be changed by other users "
        "(mode 777); chmod go-w it or use another folder"
    ]
    assert list(folder.iterdir()) == []
    if isinstance(sink, SwiftDialogSink):
        assert not sink.active


# --- a second local user (uid 501) against the command files in a sticky /var/tmp -------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="acting as a second user needs root")
ATTACKER = 501


@pytest.fixture
def var_tmp() -> Iterator[Path]:
    """A root-owned sticky world-writable folder, like /var/tmp, under folders uid 501 can traverse."""
    root = Path(tempfile.mkdtemp(prefix="cmdfile-", dir="/tmp"))
    root.chmod(0o755)
    folder = root / "tmp"
    folder.mkdir()
    folder.chmod(0o1777)
    try:
        yield folder
    finally:
        shutil.rmtree(root)


def _attacker(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", "-c", script],
        user=ATTACKER,
        group=ATTACKER,
        extra_groups=[],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


@needs_root
@pytest.mark.parametrize("sink_class", [SwiftDialogSink, DepNotifySink])
def test_hard_linked_command_file_to_a_root_only_file_is_not_truncated_or_chmodded(
    var_tmp: Path, sink_class: type[SwiftDialogSink | DepNotifySink]
) -> None:
    victim = var_tmp.parent / "sudoers"
    victim.write_text("root ALL=(ALL) ALL\n")
    victim.chmod(0o440)
    planted = var_tmp / "cmd.log"
    # made as root: Linux's fs.protected_hardlinks would stop uid 501, macOS has no such guard
    os.link(victim, planted)
    _play(sink_class(planted))
    assert victim.read_text() == "root ALL=(ALL) ALL\n"
    info = victim.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_nlink) == (0o440, 1)
    assert len(planted.read_text().splitlines()) > 5


@needs_root
@pytest.mark.parametrize("sink_class", [SwiftDialogSink, DepNotifySink])
def test_stale_command_file_of_another_user_is_replaced_and_the_run_goes_on(
    var_tmp: Path, sink_class: type[SwiftDialogSink | DepNotifySink], caplog: pytest.LogCaptureFixture
) -> None:
    planted = var_tmp / "cmd.log"
    result = _attacker(f"printf 'Command: Quit\\nquit:\\n' > {planted}; chmod 666 {planted}")
    assert result.returncode == 0, result.stderr
    with caplog.at_level(logging.WARNING):
        sink = sink_class(planted)
        sink.handle(SCRIPT[0])
    assert caplog.records == []
    text = planted.read_text()
    assert "Quit" not in text
    assert "quit:" not in text
    assert text
    info = planted.lstat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode), info.st_nlink) == (0, 0o644, 1)
    assert _attacker(f"cat {planted}").stdout == text  # the user's helper can read it
    assert _attacker(f"echo 'quit:' >> {planted}").returncode != 0  # but nobody else can add to it
    assert _attacker(f"rm -f {planted}").returncode != 0
    sink.close()


# --- the whole daemon run: a bad command file never costs the run ------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from serve(tmp_path / "site")


def _daemon_run(tmp_path: Path, site: Site) -> tuple[Paths, Path, int]:
    """Run the daemon against a sandbox with both helpers on; a fake `dialog` records its argv."""
    paths = Paths(root=tmp_path / "mac")
    record = tmp_path / "dialog-argv"
    dialog = paths.system("/usr/local/bin/dialog")
    dialog.parent.mkdir(parents=True)
    dialog.write_text(f'#!/bin/sh\necho "$@" > {record}\n')
    dialog.chmod(0o755)
    url = site.manifest(
        {"setupassistant": [{"name": "Step One", "type": "rootscript", **site.script("a.sh", "sleep 1.5")}]}
    )
    code = run_sandbox(paths, url, depnotify=True, swiftdialog=True, swiftdialog_path="/usr/local/bin/dialog")
    return paths, record, code


@needs_root
def test_stale_command_files_of_another_user_are_replaced_during_a_real_run(
    tmp_path: Path, site: Site
) -> None:
    var_tmp = Paths(root=tmp_path / "mac").system("/var/tmp")
    var_tmp.mkdir(parents=True)
    var_tmp.chmod(0o1777)
    for name in ("depnotify.log", "dialog.log"):
        (var_tmp / name).write_text("Command: Quit\nquit:\n")
        os.chown(var_tmp / name, ATTACKER, ATTACKER)
    _, record, code = _daemon_run(tmp_path, site)
    assert code == 0
    for name in ("depnotify.log", "dialog.log"):
        info = (var_tmp / name).lstat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o644)
        assert "Step One" in (var_tmp / name).read_text()
    assert (var_tmp / "depnotify.log").read_text().count("Command: Quit") == 1  # ours, at the end
    assert record.read_text().split()[:2] == ["--commandfile", str(var_tmp / "dialog.log")]


def test_unsafe_command_file_folder_costs_one_warning_and_no_window_in_a_real_run(
    tmp_path: Path, site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    var_tmp = Paths(root=tmp_path / "mac").system("/var/tmp")
    var_tmp.mkdir(parents=True)
    var_tmp.chmod(0o777)
    with caplog.at_level(logging.WARNING, logger="bootstrapper.progress.commandfile"):
        paths, record, code = _daemon_run(tmp_path, site)
    assert code == 0
    assert result(paths)["result"] == "success"
    warnings = [r.getMessage() for r in caplog.records if r.name == "bootstrapper.progress.commandfile"]
    assert len(warnings) == 2  # one per helper
    assert all("can be changed by other users (mode 777)" in w for w in warnings)
    assert list(var_tmp.iterdir()) == []
    assert not record.exists()  # no window that could never be updated or closed
