from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from bootstrapper.engine.events import DownloadProgress, RunStarted
from bootstrapper.progress.humanlog import HumanLogSink
from bootstrapper.progress.jsonlog import JsonLogSink, read_events
from tests.progress.script import SCRIPT, SHOWN


def test_jsonlog_lines_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "events.jsonl"
    sink = JsonLogSink(path)
    for event in SCRIPT:
        sink.handle(event)
    sink.close()
    expected = [
        e
        for e in SCRIPT
        if not (isinstance(e, DownloadProgress) and e.done_bytes == 560)  # under 10 % after the last line
    ]
    start = expected[0]
    assert isinstance(start, RunStarted)
    expected[0] = dataclasses.replace(start, source="https://mdm.example.com/m.yaml?token=***")
    assert read_events(path) == expected
    lines = path.read_text().splitlines()
    assert all(json.loads(line)["ts"] for line in lines)
    assert "abc" not in path.read_text() and "pw@" not in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600


def test_jsonlog_appends_across_attempts_and_skips_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    first = JsonLogSink(path)
    first.handle(SCRIPT[1])
    first.close()
    with path.open("a") as fh:
        fh.write('{"event": "step_star')  # the daemon was killed mid-line
        fh.write("\n")
    second = JsonLogSink(path)
    second.handle(SCRIPT[2])
    second.close()
    assert read_events(path) == [SCRIPT[1], SCRIPT[2]]


def test_humanlog_is_one_clean_line_per_event(tmp_path: Path) -> None:
    path = tmp_path / "bootstrapper.log"
    sink = HumanLogSink(path)
    for event in SCRIPT:
        sink.handle(event)
    sink.close()
    lines = path.read_text().splitlines()
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ "
    assert all(re.match(stamp + r"(INFO|WARNING|ERROR)\s", line) for line in lines), lines
    bodies = [line[21:].strip() for line in lines]
    assert bodies[0] == (
        "INFO    run run-1 started: 4 items from https://mdm.example.com/m.yaml?token=*** (attempt 2)"
    )
    assert "INFO    step 'Chrome' done (exit 0) in 3.2 s" in bodies
    assert sum("downloaded" in b for b in bodies) == 3
    evil = f"'{SHOWN}'"
    assert f"ERROR   step {evil} failed (exit 3) in 1.0 s: exited with 3: boom, badly" in bodies
    assert bodies[-1] == f"ERROR   run finished: failed in 7.5 s; failed: {evil}"
    assert not any(line.startswith("Command:") for line in lines)
    assert "\x07" not in path.read_text()
    # What the step printed, line by line, each prefixed with its step and stream; escapes shown.
    printed = [b for b in bodies if b.startswith(f"INFO    step {evil} std")]
    assert printed == [
        f"INFO    step {evil} stdout: working",
        f"INFO    step {evil} stdout: \\x1b[31mred\\x1b[0m",
        f"INFO    step {evil} stderr: boom, badly",
    ]
    assert "\x1b" not in path.read_text()


def test_humanlog_counts_read_as_english(tmp_path: Path) -> None:
    path = tmp_path / "bootstrapper.log"
    sink = HumanLogSink(path)
    sink.handle(RunStarted("run-1", "m.yaml", 1))
    sink.handle(RunStarted("run-1", "m.yaml", 2))
    sink.close()
    first, second = path.read_text().splitlines()
    assert first.endswith("started: 1 item from m.yaml (attempt 1)")
    assert second.endswith("started: 2 items from m.yaml (attempt 1)")
