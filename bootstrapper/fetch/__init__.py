"""Downloads: streamed, hashed, size-capped, resumable, retried and placed atomically.

The only package that imports httpx. See docs/downloads.md for the rules it enforces. The names
below load on first use, so `fetch.redact` (which display code needs) does not pull in the HTTP stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bootstrapper.fetch.downloader import Downloader
    from bootstrapper.fetch.events import Failed, FetchEvent, Finished, Progress, Retrying, Started
    from bootstrapper.fetch.manifest import fetch_manifest
    from bootstrapper.fetch.model import Download, FetchOptions
    from bootstrapper.fetch.redact import redact_url

_WHERE = {
    "Download": "model",
    "Downloader": "downloader",
    "Failed": "events",
    "FetchEvent": "events",
    "FetchOptions": "model",
    "Finished": "events",
    "Progress": "events",
    "Retrying": "events",
    "Started": "events",
    "fetch_manifest": "manifest",
    "redact_url": "redact",
}

__all__ = [
    "Download",
    "Downloader",
    "Failed",
    "FetchEvent",
    "FetchOptions",
    "Finished",
    "Progress",
    "Retrying",
    "Started",
    "fetch_manifest",
    "redact_url",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
