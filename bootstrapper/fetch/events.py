"""What the downloader reports while it works: small frozen values for the progress sinks.

The orchestrator and the sinks (console, JSON log, swiftDialog...) consume these; nothing in them is
secret (URLs in `reason` strings are redacted), so a sink may print or log them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bootstrapper.errors import FetchError


@dataclass(frozen=True)
class Started:
    key: str
    #: Expected bytes, when the item's size is known.
    total: int | None


@dataclass(frozen=True)
class Progress:
    """Throttled: at most a few per second per item, never one per network chunk."""

    key: str
    done: int
    total: int | None


@dataclass(frozen=True)
class Retrying:
    key: str
    #: The attempt that failed, counting from 1.
    attempt: int
    reason: str
    #: Seconds until the next attempt.
    wait: float


@dataclass(frozen=True)
class Finished:
    key: str
    path: Path
    bytes: int
    #: True when the file was already in place with the right hash and nothing was downloaded.
    cached: bool = False


@dataclass(frozen=True)
class Failed:
    key: str
    error: FetchError


FetchEvent = Started | Progress | Retrying | Finished | Failed
