from __future__ import annotations

import asyncio
import json
import logging
import socket
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from bootstrapper.engine.events import EventBus
from bootstrapper.errors import ClientStatusError, ConfigError, PlatformError, TransferError
from bootstrapper.fetch import FetchOptions
from bootstrapper.fetch.webhook import post_json
from bootstrapper.manifest.facts import Facts
from bootstrapper.paths import Paths
from bootstrapper.platform.sandbox import SandboxPlatform
from bootstrapper.progress.webhook import WebhookSink, device
from tests.progress.script import SCRIPT, SHOWN

SECRETS = ("hunter2pw", "SECRETKEY", "TOKEN123")
HTTP = FetchOptions(allow_http=True)


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def test_webhook_receives_run_start_failed_step_and_run_end(httpserver: HTTPServer) -> None:
    for _ in range(3):
        httpserver.expect_ordered_request("/hook", method="POST").respond_with_data("ok")
    sink = WebhookSink(
        httpserver.url_for("/hook") + "?key=SECRETKEY",
        HTTP,
        headers={"Authorization": "Bearer TOKEN123"},
        context={"serial": "C02XYZ"},
    )

    async def run() -> None:
        bus = EventBus([sink])
        for event in SCRIPT:
            bus.emit(event)
            await asyncio.sleep(0)
        await bus.aclose()

    asyncio.run(run())
    httpserver.check_assertions()
    requests = [request for request, _ in httpserver.log]
    assert all(r.headers["Authorization"] == "Bearer TOKEN123" for r in requests)
    assert all(r.args["key"] == "SECRETKEY" for r in requests)
    assert [json.loads(r.get_data()) for r in requests] == [
        {
            "event": "run_started",
            "run_id": "run-1",
            "serial": "C02XYZ",
            "source": "https://mdm.example.com/m.yaml?token=***",
            "item_count": 4,
            "attempt": 2,
        },
        {
            "event": "step_failed",
            "run_id": "run-1",
            "serial": "C02XYZ",
            "step_id": "userland[0]",
            "name": SHOWN,
            "kind": "userscript",
            "phase": "userland",
            "reason": "exited with 3: boom, badly",
            "exit_code": 3,
            "duration": 1.0,
            "output_tail": "boom, badly",
        },
        {
            "event": "run_finished",
            "run_id": "run-1",
            "serial": "C02XYZ",
            "result": "failed",
            "failed_steps": [
                {
                    "step_id": "userland[0]",
                    "name": SHOWN,
                    "output_tail": "boom, badly",
                }
            ],
            "duration": 7.5,
        },
    ]
    assert (sink.delivered, sink.failed) == (3, 0)


def test_retryable_statuses_are_retried_and_counted(httpserver: HTTPServer) -> None:
    httpserver.expect_ordered_request("/hook").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/hook").respond_with_data("slow down", status=429)
    httpserver.expect_ordered_request("/hook").respond_with_data("ok", status=204)
    sleeps = Sleeps()
    result = asyncio.run(post_json(httpserver.url_for("/hook"), {"a": 1}, HTTP, backoff=0.01, sleep=sleeps))
    assert (result.status, result.attempts) == (204, 3)
    # the downloads' backoff: doubling from `backoff`, up to 25 % jitter on top
    assert len(sleeps.calls) == 2
    for n, wait in enumerate(sleeps.calls):
        assert 0.01 * 2**n <= wait <= 0.01 * 2**n * 1.25
    assert len(httpserver.log) == 3


def test_client_errors_and_redirects_are_not_retried(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/gone").respond_with_data("no", status=404)
    httpserver.expect_request("/moved").respond_with_data(
        "", status=302, headers={"Location": "http://evil/"}
    )
    sleeps = Sleeps()
    with pytest.raises(ClientStatusError, match="HTTP 404"):
        asyncio.run(post_json(httpserver.url_for("/gone"), {}, HTTP, sleep=sleeps))
    with pytest.raises(ClientStatusError, match="redirects are not followed"):
        asyncio.run(post_json(httpserver.url_for("/moved"), {}, HTTP, sleep=sleeps))
    assert sleeps.calls == [] and len(httpserver.log) == 2


def test_secrets_never_reach_the_log_when_the_webhook_is_down(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request("/hook").respond_with_data("down", status=500)
    url = httpserver.url_for("/hook").replace("http://", "http://alice:hunter2pw@") + "?key=SECRETKEY"
    sleeps = Sleeps()
    sink = WebhookSink(url, HTTP, headers={"X-Token": "TOKEN123"}, attempts=3, backoff=0.01, sleep=sleeps)
    with caplog.at_level(logging.DEBUG, logger="bootstrapper"):
        sink.handle(SCRIPT[0])  # no running loop: posted inline
        sink.close()
    assert (sink.delivered, sink.failed) == (0, 1)
    assert len(httpserver.log) == 3 and len(sleeps.calls) == 2
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bootstrapper"))
    assert "HTTP 500" in ours and "gave up after 3 attempts" in ours
    assert "key=***" in ours
    for secret in (*SECRETS, "alice"):
        assert secret not in ours


def test_connection_errors_are_retried_then_reported_without_secrets() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    sleeps = Sleeps()
    url = f"http://127.0.0.1:{port}/hook?key=SECRETKEY"
    with pytest.raises(TransferError, match="gave up after 2 attempts") as info:
        asyncio.run(post_json(url, {}, HTTP, attempts=2, backoff=0.01, sleep=sleeps))
    assert len(sleeps.calls) == 1 and "SECRETKEY" not in str(info.value)


def test_plain_http_webhook_is_refused_unless_allowed() -> None:
    with pytest.raises(ConfigError, match=r"expected an https:// URL \(plain http must be allowed"):
        WebhookSink("http://example.com/hook?key=SECRETKEY")
    with pytest.raises(ConfigError) as info:
        WebhookSink("ftp://alice:hunter2pw@example.com/")
    assert "hunter2pw" not in str(info.value)


def test_every_document_says_which_mac_it_comes_from(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    platform = SandboxPlatform(Paths(root=tmp_path), arch="arm64", os_version="14.6", model="Mac14,2")
    sink = WebhookSink(
        httpserver.url_for("/hook"), HTTP, context={"manifest": "m.yaml"}, identity=lambda: device(platform)
    )

    async def run() -> None:
        bus = EventBus([sink])
        for event in SCRIPT:
            bus.emit(event)
        await bus.aclose()

    asyncio.run(run())
    posted = [json.loads(request.get_data()) for request, _ in httpserver.log]
    assert [p["event"] for p in posted] == ["run_started", "step_failed", "run_finished"]
    for document in posted:
        assert list(document)[:7] == [
            "event",
            "run_id",
            "serial",
            "hostname",
            "model",
            "os_version",
            "manifest",
        ]
        assert document["serial"] == "SANDBOX0001" and document["hostname"] == socket.gethostname()
        assert (document["model"], document["os_version"]) == ("Mac14,2", "14.6")


def test_a_mac_whose_facts_cannot_be_read_still_posts_with_its_host_name(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")

    class Broken(SandboxPlatform):
        async def facts(self) -> Facts:
            raise PlatformError("sysctl: no such key")

    platform = Broken(Paths(root=tmp_path), arch="arm64")
    sink = WebhookSink(httpserver.url_for("/hook"), HTTP, identity=lambda: device(platform))
    with caplog.at_level(logging.WARNING, logger="bootstrapper"):
        sink.handle(SCRIPT[0])  # no running loop: posted inline
    ((request, _),) = httpserver.log
    document = json.loads(request.get_data())
    assert document["hostname"] == socket.gethostname() and "serial" not in document
    assert "webhook: this Mac's serial number and model are unknown (sysctl: no such key)" in caplog.text
