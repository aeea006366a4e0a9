"""The swiftDialog command file: a list item per step with its status, and an overall progress bar.

swiftDialog (`/usr/local/bin/dialog`) reads commands appended to the file given with `--commandfile`,
one `command: value` per line; see docs/progress.md for the syntax followed and its sources. Launching
the window for the console user is the platform's job: `launch_argv` gives it the command line, and
`resync` re-sends every item's status once the window is up.

List item fields are separated by `, ` and keys by `: `, so commas and colons in a name are replaced by
look-alikes; a line break would start a new command, so names are cleaned to one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bootstrapper.engine.events import (
    DownloadProgress,
    Event,
    InstallProgress,
    RunFinished,
    RunStarted,
    StepFinished,
    StepRetrying,
    StepStarted,
)
from bootstrapper.manifest.kinds import spec_for
from bootstrapper.progress.commandfile import CommandFile
from bootstrapper.text import one_line

#: Where swiftDialog's installer puts its launcher, and its default command file (map with Paths.system).
DIALOG_BINARY = PurePosixPath("/usr/local/bin/dialog")
DEFAULT_COMMAND_FILE = PurePosixPath("/var/tmp/dialog.log")  # noqa: S108 (CommandFile guards it)


def field(text: object, limit: int = 80) -> str:
    """A value that cannot break swiftDialog's `key: value, key: value` list item syntax."""
    return one_line(text, limit).replace(",", "\u201a").replace(":", "\u2236")


def launch_argv(
    command_file: Path,
    titles: list[str],
    *,
    binary: PurePosixPath | Path = DIALOG_BINARY,
    title: str = "Setting up your Mac",
    message: str = "Please wait while your Mac is set up. This window closes by itself.",
) -> list[str]:
    """The command line that opens the window with every item listed (the caller runs it as the user)."""
    argv = [
        str(binary),
        "--commandfile",
        str(command_file),
        "--title",
        one_line(title),
        "--message",
        one_line(message, 500),
        "--progress",
        "100",
        "--button1disabled",
    ]
    for item in titles:
        argv += ["--listitem", field(item)]
    return argv


@dataclass
class _Item:
    title: str
    #: The item's type (events carry it as `kind`).
    type: str
    status: str = "pending"
    text: str = "Pending"
    finished: bool = False


class SwiftDialogSink:
    """Writes swiftDialog commands for the run's events; `quit_at_end` closes the window at the end."""

    def __init__(self, command_file: Path, *, quit_at_end: bool = True, progress_step: int = 10) -> None:
        self.command_file = command_file
        self._file = CommandFile(command_file)
        self._quit_at_end = quit_at_end
        self._step = progress_step
        self._items: dict[str, _Item] = {}
        self._shown: dict[tuple[str, str], int] = {}
        self._total = 0

    @property
    def active(self) -> bool:
        """False when the command file was refused: a window opened now could never be updated or closed."""
        return self._file.active

    def launch_argv(self, *, binary: PurePosixPath | Path = DIALOG_BINARY) -> list[str]:
        """`launch_argv` with the items known so far (call it after the run started)."""
        return launch_argv(self.command_file, [i.title for i in self._items.values()], binary=binary)

    def resync(self) -> None:
        """Send every item's current status and the overall progress (for a window opened late)."""
        for item in self._items.values():
            self._update(item)
        self._file.write(f"progress: {self._percent()}")

    def handle(self, event: Event) -> None:
        match event:
            case RunStarted():
                self._total = max(event.item_count, len(event.steps))
                for step in event.steps:
                    if step.status == "pending":
                        self._add(step.step_id, step.name, step.kind)
                    else:
                        text = "Done" if step.status == "done" else "Skipped"
                        self._add(step.step_id, step.name, step.kind, "success", text).finished = True
                self._file.write(f"progress: {self._percent()}", "progresstext: Starting")
            case StepStarted():
                item = self._items.get(event.step_id) or self._add(event.step_id, event.name, event.kind)
                spec = spec_for(item.type)
                verb = spec.status_text if spec else "Working on"
                item.status, item.text = "wait", verb
                self._update(item)
                self._file.write(f"progresstext: {verb} {item.title}")
            case DownloadProgress(total_bytes=total) if total:
                self._partial(event.step_id, "Downloading", 100 * event.done_bytes / total)
            case InstallProgress():
                self._partial(event.step_id, "Installing", event.percent)
            case StepRetrying():
                item = self._item(event.step_id)
                item.status, item.text = "wait", f"Retrying (attempt {event.attempt})"
                self._update(item)
            case StepFinished():
                self._finished(event)
            case RunFinished():
                self._run_finished(event)
            case _:
                pass

    def close(self) -> None:
        self._file.close()

    def _finished(self, event: StepFinished) -> None:
        item = self._item(event.step_id)
        if event.status == "done":
            item.status, item.text = "success", "Done"
        elif event.status == "failed":
            item.status, item.text = "fail", field(event.reason or "Failed", 60)
        else:
            item.status, item.text = "success", "Skipped"
        item.finished = True
        self._update(item)
        self._file.write(f"progress: {self._percent()}")

    def _run_finished(self, event: RunFinished) -> None:
        self._file.write("progress: 100", f"progresstext: {event.headline}")
        if self._quit_at_end:
            self._file.write("quit:")

    def _partial(self, step_id: str, verb: str, percent: float) -> None:
        shown = int(min(100, max(0, percent)) // self._step) * self._step
        if shown <= self._shown.get((step_id, verb), -1):
            return
        self._shown[step_id, verb] = shown
        item = self._item(step_id)
        item.status, item.text = "wait", f"{verb} {shown}%"
        self._update(item)

    def _add(
        self, step_id: str, name: str, item_type: str, status: str = "pending", text: str = "Pending"
    ) -> _Item:
        title = field(name) or field(step_id)
        taken = {i.title for i in self._items.values()}
        n = 2
        unique = title
        while unique in taken:
            unique, n = f"{title} ({n})", n + 1
        item = self._items[step_id] = _Item(unique, item_type, status, text)
        self._file.write(
            f"listitem: add, title: {item.title}, status: {item.status}, statustext: {item.text}"
        )
        return item

    def _item(self, step_id: str) -> _Item:
        return self._items.get(step_id) or self._add(step_id, step_id, "")

    def _update(self, item: _Item) -> None:
        self._file.write(f"listitem: title: {item.title}, status: {item.status}, statustext: {item.text}")

    def _percent(self) -> int:
        done = sum(1 for i in self._items.values() if i.finished)
        return round(100 * done / self._total) if self._total else 0
