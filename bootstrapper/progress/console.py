"""The terminal display: a live table of steps with a progress bar per download, then a summary.

On a terminal it redraws in place (rich `Live`); anywhere else (launchd's log, a pipe, CI) it prints
one whole line per event, never wrapped or cut at the console's width (a log is read with grep, not at
80 columns), and progress at most once per tenth or per ten seconds, so a log is not flooded. Python
log records of an interactive run print through the same console (`ConsoleLogHandler`), in the same
`warning: …` style, above the live display instead of through it. Every name and reason is untrusted
and goes through `bootstrapper.text.one_line`, so a name cannot repaint the terminal with escape codes.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from bootstrapper.engine import events as ev
from bootstrapper.fetch.redact import redact_url
from bootstrapper.progress.words import count
from bootstrapper.text import one_line

#: Plain output shows a download or an install again after a tenth more, or after this many seconds.
PLAIN_EVERY = 10.0
#: Plain lines are never cut at the console's width; these bounds only stop a hostile megabyte name.
_NAME = 500
_REASON = 2000

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
_LEVEL_STYLE = {"warning": "yellow", "error": "bold red", "critical": "bold red"}


@functools.cache
def terminal() -> Console:
    """The run's one console: the sink and the log handler share it, so a log line never cuts a bar."""
    return Console()


def say(console: Console, level: str, text: str) -> None:
    """`warning: text`: the one style for the run's messages and Python's log records alike."""
    style = _LEVEL_STYLE.get(level, "dim")
    console.print(
        f"[{style}]{one_line(level, 20, markup=True)}[/]: {one_line(text, _REASON, markup=True)}",
        soft_wrap=not console.is_terminal,
    )


class ConsoleLogHandler(logging.Handler):
    """Shows log records on the run's console as `warning: …`, above the live display."""

    def __init__(self, console: Console | None = None) -> None:
        super().__init__()
        self.console = console or terminal()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            say(self.console, record.levelname.lower(), record.getMessage())
        except Exception:
            self.handleError(record)


@dataclass
class _Row:
    name: str
    kind: str
    phase: str
    status: str = "pending"
    detail: str = ""
    duration: float | None = None
    #: A failed step's last lines of output, shown under the summary.
    output_tail: str = ""


class ConsoleSink:
    """Shows the run on `console` (default: `terminal()`); `live=None` picks the live display only on
    a real terminal. `clock` paces plain progress lines and the bars' speed (tests move it by hand)."""

    def __init__(
        self,
        console: Console | None = None,
        *,
        live: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console or terminal()
        self._live_wanted = self.console.is_terminal if live is None else live
        self._rows: dict[str, _Row] = {}
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            get_time=clock,
        )
        self._tasks: dict[str, TaskID] = {}
        self._throttle = _Throttle(clock)
        self._live: Live | None = None

    # --- the sink protocol --------------------------------------------------------------------

    def handle(self, event: ev.Event) -> None:
        match event:
            case ev.RunStarted():
                self._run_started(event)
            case ev.PhaseStarted(phase=phase):
                self._say(f"[bold]phase[/] {one_line(phase, markup=True)}")
            case ev.StepStarted():
                row = self._row(event.step_id, event.name, event.kind, event.phase)
                row.status, row.detail = "running", ""
                if not self._live:
                    self._say(f"→ {self._label(event.step_id)} ({one_line(event.kind, markup=True)}) started")
            case ev.DownloadProgress():
                self._download(event)
            case ev.InstallProgress():
                row = self._row(event.step_id)
                row.detail = f"{event.percent:.0f}% {one_line(event.phase_text, 60)}".strip()
                if not self._live and self._throttle.due((event.step_id, "install"), event.percent):
                    self._say(f"  {self._label(event.step_id)}: installing {event.percent:.0f}%")
            case ev.StepRetrying():
                row = self._row(event.step_id)
                row.detail = f"retry {event.attempt}: {one_line(event.reason, _REASON)}"
                self._say(
                    f"[yellow]↻[/] {self._label(event.step_id)}: retrying (attempt {event.attempt}): "
                    f"{one_line(event.reason, _REASON, markup=True)}"
                )
            case ev.StepFinished():
                self._step_finished(event)
            case ev.RunFinished():
                self._stop_live()
                self._summary()
                style, text = _RESULT[event.result]
                n = len(event.failed_steps)
                text = text.format(failures=f"{n} failure" + ("" if n == 1 else "s"))
                self._say(f"[{style}]{text}[/] in {_seconds(event.duration)}")
            case ev.Message(level=level, text=text):
                say(self.console, level, text)

    async def drain(self) -> None:
        """Called first when the bus closes, so an interrupted run's display is gone before the
        webhook's wait (a second Ctrl-C there would otherwise leave a frozen frame and no cursor)."""
        self._stop_live()

    def close(self) -> None:
        self._stop_live()

    # --- events -------------------------------------------------------------------------------

    def _run_started(self, event: ev.RunStarted) -> None:
        for step in event.steps:
            row = self._row(step.step_id, step.name, step.kind, step.phase)
            row.status = step.status
            row.detail = (
                one_line(step.reason, _REASON) if step.status != "done" else "done in an earlier attempt"
            )
        again = f", attempt {event.attempt}" if event.attempt > 1 else ""
        source = one_line(redact_url(event.source), _REASON, markup=True)
        self._say(f"[bold]bootstrap[/] {source}: {count(event.item_count, 'item')}{again}")
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
            return
        percent = 100 * event.done_bytes / event.total_bytes if event.total_bytes else None
        if not self._throttle.due((event.step_id, "download"), percent):
            return
        label = self._label(event.step_id)
        if percent is not None and event.total_bytes:
            sizes = f"{_size(event.done_bytes)} of {_size(event.total_bytes)}"
            self._say(f"  {label}: downloaded {percent:.0f}% ({sizes})")
        else:
            self._say(f"  {label}: downloading, {_size(event.done_bytes)} so far")

    def _step_finished(self, event: ev.StepFinished) -> None:
        row = self._row(event.step_id)
        row.status, row.duration = event.status, event.duration
        row.detail = one_line(event.reason, _REASON)
        row.output_tail = event.output_tail
        task = self._tasks.pop(event.step_id, None)
        if task is not None:
            self._progress.remove_task(task)
        if self._live:
            return
        label = self._label(event.step_id)
        reason = f": {one_line(event.reason, _REASON, markup=True)}" if event.reason else ""
        if event.status == "done":
            self._say(f"[green]✓[/] {label} done ({_seconds(event.duration)})")
        elif event.status == "failed":
            code = f" (exit {event.exit_code})" if event.exit_code is not None else ""
            self._say(f"[bold red]✗[/] {label} failed{code}{reason}")
        else:
            self._say(f"[yellow]-[/] {label} skipped{reason}")

    # --- rendering ----------------------------------------------------------------------------

    def _render(self) -> RenderableType:
        table = self._table(summary=False)
        return Group(table, self._progress.get_renderable()) if self._tasks else table

    def _summary(self) -> None:
        """A table on a terminal; one line per step elsewhere, where a table would wrap and cut."""
        rows = list(self._rows.values())
        counts: dict[str, int] = {}
        for row in rows:
            counts[row.status] = counts.get(row.status, 0) + 1
        tally = ", ".join(f"{n} {status}" for status, n in counts.items())
        if self.console.is_terminal:
            table = self._table(summary=True)
            table.caption = tally
            self.console.print(table)
        else:
            self._say(f"[bold]Summary[/]: {count(len(rows), 'step')}" + (f": {tally}" if tally else ""))
            for n, row in enumerate(rows, 1):
                took = f" in {_seconds(row.duration)}" if row.duration is not None else ""
                detail = f": {one_line(row.detail, _REASON, markup=True)}" if row.detail else ""
                where = f"{one_line(row.kind, 100, markup=True)}, {one_line(row.phase, 100, markup=True)}"
                status = f"[{_STYLE.get(row.status, 'none')}]{row.status}[/]"
                self._say(
                    f"  {n}. {one_line(row.name, _NAME, markup=True)} ({where}): {status}{took}{detail}"
                )
        self._tails(rows)

    def _tails(self, rows: list[_Row]) -> None:
        """Under the summary, the last lines each failed step printed: the why, without opening the log."""
        for row in rows:
            if row.status != "failed" or not row.output_tail:
                continue
            self._say(f"[bold red]{one_line(row.name, _NAME, markup=True)}[/] printed, at the end:")
            for line in row.output_tail.splitlines():
                self._say(f"  [dim]|[/] {one_line(line, _REASON, markup=True)}")

    def _table(self, *, summary: bool) -> Table:
        title = "Summary" if summary else "Bootstrap"
        table = Table(title=title, title_justify="left", expand=False)
        # From 80 columns on, the short columns never wrap (no `setupassista`/`nt`): the name and the
        # detail fold. Narrower, everything folds, or rich would squeeze the name to nothing.
        roomy = self.console.width >= 80
        for column in ("#", "Step", "Kind", "Phase", "Status", "Time", "Detail"):
            short = roomy and column not in ("Step", "Detail")
            table.add_column(
                column, overflow="fold", no_wrap=short, justify="right" if column in ("#", "Time") else "left"
            )
        rows = list(self._rows.values())  # a snapshot: Live renders from its own thread
        for n, row in enumerate(rows, 1):
            table.add_row(
                str(n),
                Text(one_line(row.name, 60)),
                Text(one_line(row.kind, 20)),
                Text(one_line(row.phase, 20)),
                Text(row.status, style=_STYLE.get(row.status, "")),
                _seconds(row.duration) if row.duration is not None else "",
                Text(one_line(row.detail, 120)),
            )
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
        return f"[bold]{one_line(self._row(step_id).name, _NAME, markup=True)}[/]"

    def _say(self, markup: str) -> None:
        """One line; off a terminal it is never wrapped at the console's width."""
        self.console.print(markup, soft_wrap=not self.console.is_terminal)

    def _stop_live(self) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()


class _Throttle:
    """When plain output shows a bar's progress again: at a new tenth, or ten seconds after its last line."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last: dict[tuple[str, str], tuple[int, float]] = {}

    def due(self, key: tuple[str, str], percent: float | None) -> bool:
        """`percent` None is an unknown size: its first line comes after ten seconds."""
        now = self._clock()
        tenth = -1 if percent is None else min(10, max(0, int(percent // 10)))
        last = self._last.get(key)
        if last is None:
            self._last[key] = (tenth, now)
            return percent is not None
        if tenth > last[0] or now - last[1] >= PLAIN_EVERY:
            self._last[key] = (max(tenth, last[0]), now)
            return True
        return False


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"
