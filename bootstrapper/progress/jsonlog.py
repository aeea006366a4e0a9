"""The machine-readable record of a run: one JSON object per line, appended, fsynced on close.

Appending (never rewriting) means a crash loses at most the line being written, and the next daemon
attempt adds to the same file, so one log tells the story of every attempt. `read_events` skips a torn
last line instead of failing on it.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from bootstrapper.engine.events import DownloadProgress, Event, RunStarted, from_json
from bootstrapper.fetch.redact import redact_url
from bootstrapper.progress.logfile import AppendLog

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
        self._log = AppendLog(path)

    def handle(self, event: Event) -> None:
        if self._log.closed or not self._wanted(event):
            return
        record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), **event.to_json()}
        if isinstance(event, RunStarted):
            record["source"] = redact_url(event.source)  # the log outlives the run: no tokens in it
        self._log.write_line(json.dumps(record, ensure_ascii=False, allow_nan=False))

    def close(self) -> None:
        self._log.close()

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
