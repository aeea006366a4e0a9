from __future__ import annotations

import os
from pathlib import Path

import pytest

from bootstrapper.errors import PlatformError
from bootstrapper.progress.depnotify import DepNotifySink
from bootstrapper.progress.swiftdialog import SwiftDialogSink, launch_argv
from tests.progress.script import SCRIPT, SHOWN

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
        "progresstext: Setup could not finish: 1 item(s) failed",
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
        "Status: Setup could not finish: 1 item(s) failed",
        "Command: Quit",
    ]


def test_stale_commands_from_a_previous_attempt_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "depnotify.log"
    path.write_text("Command: Quit\n")
    sink = DepNotifySink(path)
    sink.close()
    assert path.read_text() == ""


@pytest.mark.parametrize("sink_class", [SwiftDialogSink, DepNotifySink])
def test_symlink_planted_at_the_command_file_is_not_followed(
    tmp_path: Path, sink_class: type[SwiftDialogSink | DepNotifySink]
) -> None:
    victim = tmp_path / "sudoers"
    victim.write_text("root ALL=(ALL) ALL\n")
    planted = tmp_path / "cmd.log"
    os.symlink(victim, planted)
    with pytest.raises(PlatformError, match="command file"):
        sink_class(planted)
    assert victim.read_text() == "root ALL=(ALL) ALL\n"
