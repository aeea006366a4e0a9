"""Downloads: streamed, hashed, size-capped, resumable, retried and placed atomically.

The only package that imports httpx. See docs/downloads.md for the rules it enforces.
"""

from __future__ import annotations

from bootstrapper.fetch.downloader import Downloader
from bootstrapper.fetch.events import Failed, FetchEvent, Finished, Progress, Retrying, Started
from bootstrapper.fetch.manifest import fetch_manifest
from bootstrapper.fetch.model import Download, FetchOptions
from bootstrapper.fetch.redact import redact_url

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
