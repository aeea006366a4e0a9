"""A real loopback web server for the orchestrator's tests, and helpers to build manifests for it."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


@dataclass
class Site:
    root: Path
    base: str

    def add(self, name: str, data: bytes) -> tuple[str, str]:
        """Publish `data` at `name`; returns its relative URL and sha256."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return name, hashlib.sha256(data).hexdigest()

    def script(self, name: str, body: str) -> dict[str, Any]:
        url, digest = self.add(name, f"#!/bin/sh\n{body}\n".encode())
        return {"url": url, "hash": digest}

    def manifest(self, doc: dict[str, Any], name: str = "m.yaml") -> str:
        """Publish a native manifest (format 1, http allowed); returns its absolute URL."""
        full = {"format": 1, "settings": {"allow_http": True, "retries": 0, "retrywait": 0}, **doc}
        self.add(name, yaml.safe_dump(full, sort_keys=False).encode())
        return f"{self.base}/{name}"


@functools.cache
def _handler(directory: str) -> Any:
    return functools.partial(_Quiet, directory=directory)


def serve(root: Path) -> Iterator[Site]:
    root.mkdir(parents=True, exist_ok=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Site(root, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
