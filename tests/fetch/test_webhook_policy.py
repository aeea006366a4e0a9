"""The webhook goes through the downloads' parts: their TLS settings, per-host headers and retry loop."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from pytest_httpserver import HTTPServer

from bootstrapper.errors import CertificateError
from bootstrapper.fetch import FetchOptions
from bootstrapper.fetch.webhook import post_json


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def tls_hook(ca: trustme.CA) -> Iterator[HTTPServer]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(ctx)
    server = HTTPServer(host="localhost", ssl_context=ctx)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


def test_the_webhook_trusts_the_ca_bundle_and_gets_its_hosts_headers(
    tls_hook: HTTPServer, ca_file: Path
) -> None:
    tls_hook.expect_request("/hook", method="POST").respond_with_data("ok")
    options = FetchOptions(ca_bundle=ca_file, auth_headers={"localhost": {"Authorization": "Bearer T0KEN"}})
    result = asyncio.run(post_json(tls_hook.url_for("/hook"), {"a": 1}, options, headers={"X-Run": "r1"}))
    assert (result.status, result.attempts) == (200, 1)
    ((request, _),) = tls_hook.log
    assert request.headers["Authorization"] == "Bearer T0KEN"
    assert request.headers["X-Run"] == "r1"
    assert request.get_json() == {"a": 1}


def test_without_the_ca_bundle_the_webhook_is_refused_at_once(tls_hook: HTTPServer) -> None:
    sleeps = Sleeps()
    with pytest.raises(CertificateError, match="set ca_bundle"):
        asyncio.run(post_json(tls_hook.url_for("/hook"), {}, FetchOptions(), sleep=sleeps))
    assert sleeps.calls == []


def test_the_webhook_honours_retry_after_up_to_the_cap(httpserver: HTTPServer) -> None:
    httpserver.expect_ordered_request("/hook").respond_with_data("", 503, {"Retry-After": "7"})
    httpserver.expect_ordered_request("/hook").respond_with_data("", 429, {"Retry-After": "86400"})
    httpserver.expect_ordered_request("/hook").respond_with_data("ok", 200)
    sleeps = Sleeps()
    options = FetchOptions(allow_http=True, retry_after_cap=30.0)
    result = asyncio.run(post_json(httpserver.url_for("/hook"), {}, options, backoff=0.01, sleep=sleeps))
    assert result.attempts == 3
    assert sleeps.calls == [7.0, 30.0]
