"""The manifest fetch: small cap, retried until a deadline (the network comes up late), then clear."""

from __future__ import annotations

import asyncio

import pytest

from bootstrapper.errors import ClientStatusError, FetchError, SizeLimitError, TransferError
from bootstrapper.fetch import FetchOptions, fetch_manifest
from tests.support.httpfault import Exchange, FaultServer

BODY = b"format: 1\nuserland: []\n"
OPTIONS = FetchOptions(allow_http=True, connect_timeout=5, read_timeout=5)


class Clock:
    """Fake time: sleeping advances it, so a ten-minute deadline takes no time at all."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def get(url: str, clock: Clock, deadline: float = 600, **kw: object) -> bytes:
    return asyncio.run(fetch_manifest(url, OPTIONS, deadline, sleep=clock.sleep, clock=clock, **kw))  # type: ignore[arg-type]


def test_manifest_is_fetched(srv: FaultServer) -> None:
    assert get(srv.add("/m.yaml", lambda ex: ex.reply(200, BODY)), Clock()) == BODY


def test_manifest_is_retried_until_the_network_comes_up(srv: FaultServer) -> None:
    def fn(ex: Exchange) -> None:
        ex.reply(503) if ex.index < 4 else ex.reply(200, BODY)

    clock = Clock()
    assert get(srv.add("/m", fn), clock) == BODY
    assert len(clock.sleeps) == 4


def test_manifest_gives_up_at_the_deadline(srv: FaultServer) -> None:
    clock = Clock()
    with pytest.raises(TransferError, match="no manifest after 300s") as info:
        get(srv.add("/m", lambda ex: ex.reply(502)), clock, deadline=300)
    assert clock.now == pytest.approx(300)
    assert "check the network" in str(info.value)


def test_manifest_404_fails_at_once(srv: FaultServer) -> None:
    clock = Clock()
    with pytest.raises(ClientStatusError):
        get(srv.add("/m", lambda ex: ex.reply(404)), clock)
    assert clock.sleeps == []


def test_oversized_manifest_is_cut(srv: FaultServer) -> None:
    from tests.support.httpfault import endless

    with pytest.raises(SizeLimitError):
        get(
            srv.add("/m", lambda ex: ex.reply(200, endless(), content_length=None)),
            Clock(),
            max_bytes=100_000,
        )


def test_manifest_url_with_credentials_is_refused() -> None:
    with pytest.raises(FetchError, match="credentials") as info:
        get("https://admin:hunter2@example.org/m.yaml", Clock())
    assert "hunter2" not in str(info.value)
