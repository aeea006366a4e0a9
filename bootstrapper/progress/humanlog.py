"""The log an admin reads: one plain, timestamped line per thing that happened, and every line a
step's program printed, after the step (`step 'Name' stdout: …`, `… stderr: …`).

Every value is cleaned to one line, so a hostile item name cannot forge extra log lines.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bootstrapper.engine import events as ev
from bootstrapper.fetch.redact import redact_url
from bootstrapper.progress.logfile import AppendLog
from bootstrapper.progress.words import count
from bootstrapper.text import one_line

#: Characters of one printed line kept in the log; a longer line (a progress bar redrawn with \r) is cut.
_LINE = 2000


class HumanLogSink:
    """Appends lines like `2024-05-01T12:00:00Z INFO step 'Chrome' (package) started` to `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._names: dict[str, str] = {}
        self._quarters: dict[tuple[str, str], int] = {}
        self._log = AppendLog(path)

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.StepOutput):
            self._output(event)
            return
        line = self._format(event)
        if line is not None:
            level, text = line
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            self._log.write_line(f"{stamp} {level:<7} {text}")

    def close(self) -> None:
        self._log.close()

    def _format(self, event: ev.Event) -> tuple[str, str] | None:
        match event:
            case ev.RunStarted():
                for step in event.steps:
                    self._names[step.step_id] = one_line(step.name, 100)
                return "INFO", (
                    f"run {one_line(event.run_id)} started: {count(event.item_count, 'item')} from "
                    f"{one_line(redact_url(event.source), 300)} (attempt {event.attempt})"
                )
            case ev.PhaseStarted(phase=phase):
                return "INFO", f"phase {one_line(phase)} started"
            case ev.StepStarted():
                self._names[event.step_id] = one_line(event.name, 100)
                where = f"{one_line(event.kind)}, {one_line(event.phase)}"
                return "INFO", f"step {self._name(event.step_id)} ({where}) started"
            case ev.DownloadProgress() if event.total_bytes:
                percent = 100 * event.done_bytes / event.total_bytes
                if self._crossed(event.step_id, "download", percent):
                    return "INFO", (
                        f"step {self._name(event.step_id)} downloaded {percent:.0f}% "
                        f"({event.done_bytes} of {count(event.total_bytes, 'byte')})"
                    )
            case ev.InstallProgress():
                if self._crossed(event.step_id, "install", event.percent):
                    text = one_line(event.phase_text, 100)
                    return "INFO", f"step {self._name(event.step_id)} installing {event.percent:.0f}% {text}"
            case ev.StepRetrying():
                return "WARNING", (
                    f"step {self._name(event.step_id)} retrying (attempt {event.attempt}): "
                    f"{one_line(event.reason, 500)}"
                )
            case ev.StepFinished():
                return self._finished(event)
            case ev.RunFinished():
                failed = ", ".join(self._name(s) for s in event.failed_steps)
                level = "ERROR" if event.result == "failed" else "INFO"
                more = f"; failed: {failed}" if failed else ""
                return level, f"run finished: {event.result} in {event.duration:.1f} s{more}"
            case ev.Message(level=level, text=text):
                return level.upper(), one_line(text, 1000)
        return None

    def _finished(self, event: ev.StepFinished) -> tuple[str, str]:
        name = self._name(event.step_id)
        code = f" (exit {event.exit_code})" if event.exit_code is not None else ""
        reason = f": {one_line(event.reason, 500)}" if event.reason else ""
        level = "ERROR" if event.status == "failed" else "INFO"
        return level, f"step {name} {event.status}{code} in {event.duration:.1f} s{reason}"

    def _output(self, event: ev.StepOutput) -> None:
        """Every line a step printed, each prefixed (`step 'Name' stderr: …`) so that grep finds a
        step's output and a printed line cannot pass for one of ours."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        prefix = f"{stamp} {'INFO':<7} step {self._name(event.step_id)} {one_line(event.stream, 10)}:"
        for line in event.text.splitlines():
            self._log.write_line(f"{prefix} {one_line(line, _LINE)}".rstrip())

    def _name(self, step_id: str) -> str:
        return f"'{self._names.get(step_id, one_line(step_id, 100))}'"

    def _crossed(self, step_id: str, what: str, percent: float) -> bool:
        quarter = min(4, max(0, int(percent // 25)))
        if quarter <= self._quarters.get((step_id, what), -1):
            return False
        self._quarters[step_id, what] = quarter
        return True
