"""The machine-readable record of a run: one JSON object per line, appended, fsynced on close.

Appending (never rewriting) means a crash loses at most the line being written, and the next daemon
attempt adds to the same file, so one log tells the story of every attempt. `read_events` skips a torn
last line instead of failing on it.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from bootstrapper.engine.events import DownloadProgress, Event, RunStarted, from_json
from bootstrapper.fetch.redact import redact_url

log = logging.getLogger(__name__)


class JsonLogSink:
    """Appends `{"ts": ..., "event": ..., ...}` lines to `path` (created 0600, folder included).

    Download progress is written at most once per `progress_step` percent, or the log would hold a
    line per network chunk.
    """

    def __init__(self, path: Path, *, progress_step: float = 10.0) -> None:
        self.path = path
        self._progress_step = progress_step
        self._last_percent: dict[str, float] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0), 0o600)
        self._fh: IO[str] | None = os.fdopen(fd, "a", encoding="utf-8")

    def handle(self, event: Event) -> None:
        if self._fh is None or not self._wanted(event):
            return
        record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), **event.to_json()}
        if isinstance(event, RunStarted):
            record["source"] = redact_url(event.source)  # the log outlives the run: no tokens in it
        self._fh.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()

    def _wanted(self, event: Event) -> bool:
        if not isinstance(event, DownloadProgress) or not event.total_bytes:
            return True
        percent = 100 * event.done_bytes / event.total_bytes
        last = self._last_percent.get(event.step_id)
        if last is not None and percent < 100 and percent - last < self._progress_step:
            return False
        self._last_percent[event.step_id] = percent
        return True


def read_events(path: Path) -> list[Event]:
    """Every event in a JSON-lines log, in order; unreadable lines (a torn last line) are skipped."""
    events: list[Event] = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                events.append(from_json(json.loads(line)))
            except (ValueError, TypeError) as exc:
                log.warning("%s:%d: skipped an unreadable event line (%s)", path, number, exc)
    return events
