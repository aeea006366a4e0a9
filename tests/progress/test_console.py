from __future__ import annotations

import asyncio
import io
import logging

from rich.console import Console

from bootstrapper.engine.events import (
    DownloadProgress,
    EventBus,
    Message,
    PlannedStep,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
)
from bootstrapper.progress.console import ConsoleLogHandler, ConsoleSink
from tests.progress.script import SCRIPT, SHOWN


def _console(*, terminal: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=terminal, width=160, color_system=None), buffer


def test_plain_output_when_not_a_terminal(tmp_path: object) -> None:
    console, buffer = _console(terminal=False)
    sink = ConsoleSink(console)
    for event in SCRIPT:
        sink.handle(event)
    sink.close()
    out = buffer.getvalue()
    lines = out.splitlines()
    assert "→ Chrome (package) started" in lines
    # Progress is throttled to one line per tenth: 0, 50 and 100 % here, not one per chunk.
    assert [line.strip() for line in lines if "downloaded" in line] == [
        "Chrome: downloaded 0% (0 B of 1.0 KB)",
        "Chrome: downloaded 55% (550 B of 1.0 KB)",
        "Chrome: downloaded 100% (1.0 KB of 1.0 KB)",
    ]
    assert any(line.startswith("✓ Chrome done (3.2 s)") for line in lines)
    assert any("failed (exit 3): exited with 3: boom, badly" in line for line in lines)
    assert "Summary" in out and "bootstrap failed in 7.5 s" in out
    assert "\x1b" not in out
    assert "https://mdm.example.com/m.yaml?token=***" in out and "abc" not in out and "pw@" not in out


def test_hostile_names_are_shown_as_text_never_as_markup_or_control_sequences() -> None:
    for terminal in (False, True):
        console, buffer = _console(terminal=terminal)
        sink = ConsoleSink(console, live=False)
        for event in SCRIPT:
            sink.handle(event)
        sink.close()
        out = buffer.getvalue()
        assert "[bold red]Evil[/]" in out  # markup printed literally
        assert "\x07" not in out and "\x1b]0;" not in out  # no bell, no title rewrite
        assert "\nCommand: RestartNow:" not in out  # the line break in the name is gone
        assert "\\x1b]0;pwned\\x07 Command: RestartNow:" in out  # the escape shown, not obeyed


def test_live_display_on_a_terminal_ends_with_the_summary() -> None:
    console, buffer = _console(terminal=True)
    sink = ConsoleSink(console)
    for event in SCRIPT:
        sink.handle(event)
    sink.close()
    out = buffer.getvalue()
    assert "Summary" in out and "bootstrap failed" in out
    assert "\x07" not in out and "\x1b]0;pwned" not in out
    assert "→ Chrome" not in out  # live mode redraws a table instead of printing a line per step


def test_the_summary_shows_what_a_failed_step_printed_last() -> None:
    for terminal in (False, True):
        console, buffer = _console(terminal=terminal)
        sink = ConsoleSink(console, live=False)
        for event in SCRIPT:
            sink.handle(event)
        lines = buffer.getvalue().splitlines()
        said = lines.index(f"{SHOWN} printed, at the end:")
        assert next(n for n, line in enumerate(lines) if "Summary" in line) < said
        assert lines[said + 1] == "  | boom, badly"
        assert "working" not in buffer.getvalue()  # only the tail, and of stderr; the log has the rest


def test_close_without_run_finished_stops_the_live_display() -> None:
    console, _ = _console(terminal=True)
    sink = ConsoleSink(console)
    sink.handle(RunStarted("r", "m.yaml", 1))
    sink.handle(StepStarted("a", "A", "wait", "userland"))
    assert sink._live is not None and sink._live.is_started
    sink.close()
    assert sink._live is None
    sink.handle(RunFinished("success"))  # a late event after close is harmless


class Clock:
    """A hand-moved clock for the progress throttle and rich's speed estimate."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _plain(clock: Clock) -> tuple[ConsoleSink, io.StringIO]:
    console, buffer = _console(terminal=False)
    sink = ConsoleSink(console, clock=clock)
    sink.handle(RunStarted("r", "m.yaml", 1, 1, (PlannedStep("s", "Big", "package", "setupassistant"),)))
    sink.handle(StepStarted("s", "Big", "package", "setupassistant"))
    return sink, buffer


def _progress_lines(buffer: io.StringIO) -> list[str]:
    return [line.strip() for line in buffer.getvalue().splitlines() if "Big: download" in line]


def test_plain_download_progress_is_a_line_per_tenth_or_per_ten_seconds() -> None:
    clock = Clock()
    sink, buffer = _plain(clock)
    total = 100_000_000
    # A fast stretch: 200 chunks in two seconds give one line per tenth, not one per chunk.
    for n in range(201):
        clock.now = n / 100
        sink.handle(DownloadProgress("s", n * total // 400, total))
    assert _progress_lines(buffer) == [
        f"Big: downloaded {p}% ({p}.0 MB of 100.0 MB)" if p else "Big: downloaded 0% (0 B of 100.0 MB)"
        for p in (0, 10, 20, 30, 40, 50)
    ]
    # A slow stretch: 1 % per 5 s gives a line every ten seconds between the tenths.
    for n in range(1, 11):
        clock.now = 2 + 5 * n
        sink.handle(DownloadProgress("s", (50 + n) * total // 100, total))
    assert [line.split()[2] for line in _progress_lines(buffer)[6:]] == ["52%", "54%", "56%", "58%", "60%"]


def test_plain_download_of_unknown_size_says_how_much_every_ten_seconds() -> None:
    clock = Clock()
    sink, buffer = _plain(clock)
    for n in range(60):
        clock.now = n
        sink.handle(DownloadProgress("s", n * 1_000_000))
    assert _progress_lines(buffer) == [f"Big: downloading, {n}.0 MB so far" for n in (10, 20, 30, 40, 50)]


def test_a_terminal_bar_shows_the_announced_size_percent_and_time_left() -> None:
    clock = Clock()
    console = Console(file=io.StringIO(), force_terminal=True, width=80, color_system=None)
    sink = ConsoleSink(console, clock=clock)
    sink.handle(RunStarted("r", "m.yaml", 1, 1, (PlannedStep("s", "Big", "package", "setupassistant"),)))
    sink.handle(StepStarted("s", "Big", "package", "setupassistant"))
    for second, done in enumerate((0, 2_000_000, 4_000_000, 6_000_000)):
        clock.now = second
        sink.handle(DownloadProgress("s", done, 12_000_000))
    frame = Console(file=io.StringIO(), width=80, color_system=None)
    with frame.capture() as capture:
        frame.print(sink._render())
    sink.close()
    bar = next(line for line in capture.get().splitlines() if line.startswith("Big"))
    assert "6.0/12.0 MB" in bar and "?" not in bar
    assert "50%" in bar
    assert "0:00:03" in bar  # 6 MB left at 2 MB/s


def test_the_summary_table_keeps_short_columns_whole_at_80_columns() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=80, color_system=None, record=True)
    sink = ConsoleSink(console, live=False)
    name = "Enrollment check for an already enrolled and configured Mac"
    sink.handle(RunStarted("r", "m.yaml", 1, 1, (PlannedStep("s", name, "rootscript", "setupassistant"),)))
    sink.handle(StepFinished("s", "done", "not set up yet: continuing with the rest of the run", 0, 1.0))
    sink.handle(RunFinished("success", (), 1.0))
    text = console.export_text()
    assert "setupassistant" in text and "rootscript" in text and "done" in text


def test_log_records_show_in_the_sinks_message_style() -> None:
    for terminal in (False, True):
        console, buffer = _console(terminal=terminal)
        sink = ConsoleSink(console, live=False)
        sink.handle(Message("warning", "from the engine"))
        logger = logging.getLogger("bootstrapper.test_console")
        handler = ConsoleLogHandler(console)
        logger.addHandler(handler)
        try:
            logger.warning("from a %s", "logger")
        finally:
            logger.removeHandler(handler)
        assert buffer.getvalue().splitlines() == ["warning: from the engine", "warning: from a logger"]


def test_counts_read_as_english() -> None:
    console, buffer = _console(terminal=False)
    sink = ConsoleSink(console)
    sink.handle(RunStarted("r", "m.yaml", 1, 1, (PlannedStep("s", "Only", "package", "setupassistant"),)))
    sink.handle(StepFinished("s", "done", "", 0, 1.0))
    sink.handle(RunFinished("success", (), 1.0))
    out = buffer.getvalue()
    assert "m.yaml: 1 item" in out and "1 items" not in out
    assert "Summary: 1 step: 1 done" in out


def test_an_interrupted_display_is_gone_before_slower_sinks_drain() -> None:
    console, _ = _console(terminal=True)
    sink = ConsoleSink(console)
    seen: list[bool] = []

    class Slow:
        def handle(self, event: object) -> None:
            pass

        async def drain(self) -> None:
            seen.append(sink._live is None)

        def close(self) -> None:
            pass

    bus = EventBus([sink, Slow()])
    bus.emit(RunStarted("r", "m.yaml", 1))
    bus.emit(StepStarted("a", "A", "wait", "userland"))  # interrupted here: no RunFinished
    assert sink._live is not None
    asyncio.run(bus.aclose())
    assert seen == [True]
