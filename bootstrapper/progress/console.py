"""The terminal display: a live table of steps with a progress bar per download, then a summary.

On a terminal it redraws in place (rich `Live`); anywhere else (launchd's log, a pipe, CI) it prints
plain lines, and throttles progress to a line per quarter so a log is not flooded. Every name and
reason is untrusted and goes through `bootstrapper.text.one_line` (RELIABILITY #26).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from bootstrapper.engine import events as ev
from bootstrapper.fetch.redact import redact_url
from bootstrapper.text import one_line

_STYLE = {
    "pending": "dim",
    "running": "cyan",
    "done": "green",
    "failed": "bold red",
    "skipped": "yellow",
}
_RESULT = {
    "success": ("green", "bootstrap finished: success"),
    "partial": ("yellow", "bootstrap finished with {failures}"),
    "failed": ("bold red", "bootstrap failed"),
    "already-set-up": ("green", "nothing to do: this Mac is already set up (preflight passed)"),
}


@dataclass
class _Row:
    name: str
    kind: str
    phase: str
    status: str = "pending"
    detail: str = ""
    duration: float | None = None


class ConsoleSink:
    """Shows the run on `console`; `live=None` picks the live display only on a real terminal."""

    def __init__(self, console: Console | None = None, *, live: bool | None = None) -> None:
        self.console = console or Console()
        self._live_wanted = self.console.is_terminal if live is None else live
        self._rows: dict[str, _Row] = {}
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._tasks: dict[str, TaskID] = {}
        self._quarters: dict[tuple[str, str], int] = {}
        self._live: Live | None = None

    # --- the sink protocol --------------------------------------------------------------------

    def handle(self, event: ev.Event) -> None:
        match event:
            case ev.RunStarted():
                self._run_started(event)
            case ev.PhaseStarted(phase=phase):
                self.console.print(f"[bold]phase[/] {one_line(phase, markup=True)}")
            case ev.StepStarted():
                row = self._row(event.step_id, event.name, event.kind, event.phase)
                row.status, row.detail = "running", ""
                if not self._live:
                    self.console.print(
                        f"→ {self._label(event.step_id)} ({one_line(event.kind, markup=True)}) started"
                    )
            case ev.DownloadProgress():
                self._download(event)
            case ev.InstallProgress():
                row = self._row(event.step_id)
                row.detail = f"{event.percent:.0f}% {one_line(event.phase_text, 60)}".strip()
                if not self._live and self._crossed(event.step_id, "install", event.percent):
                    self.console.print(f"  {self._label(event.step_id)}: installing {event.percent:.0f}%")
            case ev.StepRetrying():
                row = self._row(event.step_id)
                row.detail = f"retry {event.attempt}: {one_line(event.reason, 80)}"
                self.console.print(
                    f"[yellow]↻[/] {self._label(event.step_id)}: retrying (attempt {event.attempt}): "
                    f"{one_line(event.reason, markup=True)}"
                )
            case ev.StepFinished():
                self._step_finished(event)
            case ev.RunFinished():
                self._stop_live()
                self.console.print(self._table(summary=True, duration=event.duration))
                style, text = _RESULT[event.result]
                n = len(event.failed_steps)
                text = text.format(failures=f"{n} failure" + ("" if n == 1 else "s"))
                self.console.print(f"[{style}]{text}[/] in {_seconds(event.duration)}")
            case ev.Message(level=level, text=text):
                style = {"warning": "yellow", "error": "bold red"}.get(level, "dim")
                self.console.print(f"[{style}]{level}[/]: {one_line(text, 500, markup=True)}")

    def close(self) -> None:
        self._stop_live()

    # --- events -------------------------------------------------------------------------------

    def _run_started(self, event: ev.RunStarted) -> None:
        for step in event.steps:
            row = self._row(step.step_id, step.name, step.kind, step.phase)
            row.status = step.status
            row.detail = one_line(step.reason, 80) if step.status != "done" else "done in an earlier attempt"
        again = f", attempt {event.attempt}" if event.attempt > 1 else ""
        source = one_line(redact_url(event.source), 300, markup=True)
        self.console.print(f"[bold]bootstrap[/] {source}: {event.item_count} items{again}")
        if self._live_wanted and self._live is None:
            self._live = Live(
                get_renderable=self._render, console=self.console, refresh_per_second=8, transient=True
            )
            self._live.start()

    def _download(self, event: ev.DownloadProgress) -> None:
        row = self._row(event.step_id)
        finished = event.total_bytes is not None and event.done_bytes >= event.total_bytes
        row.detail = "downloaded" if finished else "downloading"
        if self._live:
            task = self._tasks.get(event.step_id)
            if task is None:
                task = self._progress.add_task(one_line(row.name, 40), total=event.total_bytes)
                self._tasks[event.step_id] = task
            self._progress.update(task, completed=event.done_bytes, total=event.total_bytes)
        elif event.total_bytes:
            percent = 100 * event.done_bytes / event.total_bytes
            if self._crossed(event.step_id, "download", percent):
                self.console.print(
                    f"  {self._label(event.step_id)}: downloaded {percent:.0f}% "
                    f"({_size(event.done_bytes)} of {_size(event.total_bytes)})"
                )

    def _step_finished(self, event: ev.StepFinished) -> None:
        row = self._row(event.step_id)
        row.status, row.duration = event.status, event.duration
        row.detail = one_line(event.reason, 80)
        task = self._tasks.pop(event.step_id, None)
        if task is not None:
            self._progress.remove_task(task)
        if self._live:
            return
        label = self._label(event.step_id)
        reason = f": {one_line(event.reason, 300, markup=True)}" if event.reason else ""
        if event.status == "done":
            self.console.print(f"[green]✓[/] {label} done ({_seconds(event.duration)})")
        elif event.status == "failed":
            code = f" (exit {event.exit_code})" if event.exit_code is not None else ""
            self.console.print(f"[bold red]✗[/] {label} failed{code}{reason}")
        else:
            self.console.print(f"[yellow]-[/] {label} skipped{reason}")

    # --- rendering ----------------------------------------------------------------------------

    def _render(self) -> RenderableType:
        table = self._table(summary=False)
        return Group(table, self._progress.get_renderable()) if self._tasks else table

    def _table(self, *, summary: bool, duration: float | None = None) -> Table:
        title = "Summary" if summary else "Bootstrap"
        table = Table(title=title, title_justify="left", expand=False)
        for column in ("#", "Step", "Kind", "Phase", "Status", "Time", "Detail"):
            table.add_column(column, overflow="fold", justify="right" if column in ("#", "Time") else "left")
        rows = list(self._rows.values())  # a snapshot: Live renders from its own thread
        for n, row in enumerate(rows, 1):
            table.add_row(
                str(n),
                Text(one_line(row.name, 60)),
                Text(one_line(row.kind, 20)),
                Text(one_line(row.phase, 20)),
                Text(row.status, style=_STYLE.get(row.status, "")),
                _seconds(row.duration) if row.duration is not None else "",
                Text(row.detail),
            )
        if summary and duration is not None:
            counts: dict[str, int] = {}
            for row in rows:
                counts[row.status] = counts.get(row.status, 0) + 1
            table.caption = ", ".join(f"{n} {status}" for status, n in counts.items())
        return table

    # --- helpers ------------------------------------------------------------------------------

    def _row(self, step_id: str, name: str = "", kind: str = "", phase: str = "") -> _Row:
        row = self._rows.get(step_id)
        if row is None:
            row = self._rows[step_id] = _Row(name or step_id, kind, phase)
        else:
            row.name, row.kind, row.phase = name or row.name, kind or row.kind, phase or row.phase
        return row

    def _label(self, step_id: str) -> str:
        return f"[bold]{one_line(self._row(step_id).name, 80, markup=True)}[/]"

    def _crossed(self, step_id: str, what: str, percent: float) -> bool:
        """True when progress enters a new quarter: plain output gets at most five lines per bar."""
        quarter = min(4, max(0, int(percent // 25)))
        key = (step_id, what)
        if quarter <= self._quarters.get(key, -1):
            return False
        self._quarters[key] = quarter
        return True

    def _stop_live(self) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"
