"""The DEPNotify command file: a determinate bar that moves one stage per finished step.

DEPNotify reads `Command: ...` and `Status: ...` lines appended to its control file (default
`/var/tmp/depnotify.log`). We use `Command: DeterminateManual: N` rather than `Command: Determinate: N`
because in plain determinate mode every `Status:` line also advances the bar, which would drift as soon as
a step posts more than one status (a retry, a failure); in manual mode only
`Command: DeterminateManualStep: 1`, sent once per finished step, moves it. Sources in docs/progress.md.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from bootstrapper.engine.events import (
    Event,
    RunFinished,
    RunStarted,
    StepFinished,
    StepRetrying,
    StepStarted,
)
from bootstrapper.manifest.kinds import spec_for
from bootstrapper.progress.commandfile import CommandFile
from bootstrapper.text import one_line

#: The program inside DEPNotify.app, run as the user with `-path COMMAND_FILE` (map with Paths.system).
DEPNOTIFY_BINARY = PurePosixPath("/Applications/Utilities/DEPNotify.app/Contents/MacOS/DEPNotify")
#: DEPNotify's default control file (map with Paths.system).
DEFAULT_COMMAND_FILE = PurePosixPath("/var/tmp/depnotify.log")  # noqa: S108 (CommandFile guards it)


class DepNotifySink:
    """Writes DEPNotify commands for the run's events; `quit_at_end` sends `Command: Quit` last."""

    def __init__(self, command_file: Path, *, quit_at_end: bool = True) -> None:
        self.command_file = command_file
        self._file = CommandFile(command_file)
        self._quit_at_end = quit_at_end
        self._names: dict[str, str] = {}
        self._counted: set[str] = set()

    def handle(self, event: Event) -> None:
        match event:
            case RunStarted():
                for step in event.steps:
                    self._names[step.step_id] = one_line(step.name, 100)
                already = [s.step_id for s in event.steps if s.status != "pending"]
                self._counted.update(already)
                self._file.write(f"Command: DeterminateManual: {max(event.item_count, len(event.steps))}")
                if already:
                    self._file.write(f"Command: DeterminateManualStep: {len(already)}")
                self._file.write("Status: Preparing your Mac")
            case StepStarted():
                self._names[event.step_id] = one_line(event.name, 100)
                spec = spec_for(event.kind)
                verb = spec.verb if spec else "Working on"
                self._file.write(f"Status: {verb} {self._name(event.step_id)}")
            case StepRetrying():
                self._file.write(f"Status: Retrying {self._name(event.step_id)} (attempt {event.attempt})")
            case StepFinished():
                if event.status == "failed":
                    self._file.write(f"Status: {self._name(event.step_id)} failed")
                if event.step_id not in self._counted:
                    self._counted.add(event.step_id)
                    self._file.write("Command: DeterminateManualStep: 1")
            case RunFinished():
                self._file.write(f"Status: {event.headline}")
                if self._quit_at_end:
                    self._file.write("Command: Quit")
            case _:
                pass

    def close(self) -> None:
        self._file.close()

    def _name(self, step_id: str) -> str:
        return self._names.get(step_id) or one_line(step_id, 100)
