"""Fixtures for the downloader's tests: a real loopback server, a TLS one, and a harness that counts waits."""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from bootstrapper.errors import FetchError
from bootstrapper.fetch import Download, Downloader, FetchEvent, FetchOptions
from bootstrapper.fetch.staging import Writer
from tests.support.httpfault import FaultServer

#: One file used by most tests: random, so a wrong byte anywhere changes the hash.
DATA = os.urandom(1024 * 1024 + 123)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Harness:
    """Runs the real downloader against a loopback server; records its sleeps and events."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging = root / "staging"
        self.dest = root / "out" / "file.pkg"
        self.sleeps: list[float] = []
        self.events: list[FetchEvent] = []
        self.options = FetchOptions(allow_http=True, connect_timeout=5, read_timeout=5, min_rate_window=5)

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def item(self, url: str, data: bytes = DATA, **kw: Any) -> Download:
        fields: dict[str, Any] = {
            "key": "userland[0]",
            "url": url,
            "dest": self.dest,
            "sha256": sha(data),
            "size": len(data),
            "retrywait": 1.0,
        }
        fields.update(kw)
        return Download(**fields)

    def downloader(self, options: FetchOptions | None = None, write: Writer = os.write) -> Downloader:
        return Downloader(
            options or self.options, self.staging, self.events.append, sleep=self._sleep, write=write
        )

    def fetch(self, item: Download, options: FetchOptions | None = None, write: Writer = os.write) -> Path:
        async def go() -> Path:
            async with self.downloader(options, write) as d:
                return await d.fetch(item)

        return asyncio.run(go())

    def fail(
        self, item: Download, options: FetchOptions | None = None, write: Writer = os.write
    ) -> FetchError:
        with pytest.raises(FetchError) as info:
            self.fetch(item, options, write)
        return info.value

    def parts(self) -> list[Path]:
        return sorted(self.staging.glob("*.part*"))


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


@pytest.fixture
def srv() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def tls_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
    return ctx


@pytest.fixture
def tls_srv(ca: trustme.CA) -> Iterator[FaultServer]:
    with FaultServer(tls=tls_context(ca)) as server:
        yield server


@pytest.fixture
def system_store(ca_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The trustme CA as the only root of this process's system store (OpenSSL's default locations,
    which truststore reads on Linux)."""
    empty = tmp_path / "no-certs"
    empty.mkdir()
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    monkeypatch.setenv("SSL_CERT_DIR", str(empty))
    return ca_file
