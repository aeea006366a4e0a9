from __future__ import annotations

import io

from rich.console import Console

from bootstrapper.engine.events import RunFinished, RunStarted, StepStarted
from bootstrapper.progress.console import ConsoleSink
from tests.progress.script import SCRIPT


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
    # Progress is throttled to one line per quarter: 0, 50 and 100 % here, not one per chunk.
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


def test_close_without_run_finished_stops_the_live_display() -> None:
    console, _ = _console(terminal=True)
    sink = ConsoleSink(console)
    sink.handle(RunStarted("r", "m.yaml", 1))
    sink.handle(StepStarted("a", "A", "wait", "userland"))
    assert sink._live is not None and sink._live.is_started
    sink.close()
    assert sink._live is None
    sink.handle(RunFinished("success"))  # a late event after close is harmless
