"""Bodies that lie about their length, never end, or trickle in: each is cut in bounded time."""

from __future__ import annotations

import time

from bootstrapper.errors import HashMismatchError, SizeLimitError, SlowTransferError, TransferError
from bootstrapper.fetch import FetchOptions
from tests.fetch.conftest import DATA, Harness
from tests.support.httpfault import Exchange, FaultServer, endless


def test_content_length_longer_than_the_body_is_detected(h: Harness, srv: FaultServer) -> None:
    def fn(ex: Exchange) -> None:
        ex.reply(200, DATA[:1000], {"ETag": '"v1"'}, content_length=len(DATA), cut_after=1000)

    err = h.fail(h.item(srv.add("/f", fn), retries=1))
    assert isinstance(err, TransferError)
    assert "broke off" in str(err)
    assert not h.dest.exists()


def test_content_length_shorter_than_the_body_is_not_trusted(h: Harness, srv: FaultServer) -> None:
    # the server says 1000 bytes and sends the whole file: we read 1000, and the size says it is short
    def fn(ex: Exchange) -> None:
        ex.reply(200, DATA, content_length=1000)

    err = h.fail(h.item(srv.add("/f", fn), retries=1))
    assert isinstance(err, TransferError)
    assert f"1000 of {len(DATA)} bytes" in str(err)
    assert not h.dest.exists()


def test_content_length_shorter_than_the_body_without_a_size_fails_the_hash(
    h: Harness, srv: FaultServer
) -> None:
    url = srv.add("/f", lambda ex: ex.reply(200, DATA, content_length=1000))
    err = h.fail(h.item(url, size=None, retries=0))
    assert isinstance(err, HashMismatchError)
    assert not h.dest.exists() and h.parts() == []


def test_endless_body_is_cut_at_the_cap(h: Harness, srv: FaultServer) -> None:
    url = srv.add("/f", lambda ex: ex.reply(200, endless(), content_length=None))
    started = time.monotonic()
    err = h.fail(h.item(url, size=None), FetchOptions(allow_http=True, max_bytes=2 * 1024 * 1024))
    assert isinstance(err, SizeLimitError)
    assert time.monotonic() - started < 10
    assert h.sleeps == [], "an endless body is an attack, not a glitch: it is not retried"
    assert h.parts() == [] and not h.dest.exists()


def test_body_longer_than_the_size_is_cut(h: Harness, srv: FaultServer) -> None:
    url = srv.add("/f", lambda ex: ex.reply(200, DATA + b"extra", content_length=None))
    err = h.fail(h.item(url))
    assert isinstance(err, SizeLimitError)
    assert "item's size" in str(err)
    assert h.parts() == [] and not h.dest.exists()


def test_content_length_over_the_size_is_refused_before_reading(h: Harness, srv: FaultServer) -> None:
    url = srv.add("/f", lambda ex: ex.reply(200, DATA + DATA))
    err = h.fail(h.item(url))
    assert isinstance(err, SizeLimitError)


def test_slow_loris_body_is_aborted(h: Harness, srv: FaultServer) -> None:
    # one byte every 50 ms: the read timeout (5 s) never fires, the throughput rule does
    url = srv.add("/f", lambda ex: ex.reply(200, DATA, drip=0.05))
    options = FetchOptions(allow_http=True, read_timeout=5, min_rate=1024, min_rate_window=0.5)
    started = time.monotonic()
    err = h.fail(h.item(url, retries=1), options)
    assert isinstance(err, SlowTransferError)
    assert time.monotonic() - started < 4
    assert len(h.sleeps) == 1, "a slow server may recover: retried"
    assert not h.dest.exists()


def test_slow_loris_headers_are_aborted(h: Harness, srv: FaultServer) -> None:
    def fn(ex: Exchange) -> None:
        time.sleep(1.5)
        ex.serve(DATA)

    options = FetchOptions(allow_http=True, read_timeout=5, min_rate=1024, min_rate_window=0.5)
    err = h.fail(h.item(srv.add("/f", fn), retries=0), options)
    assert isinstance(err, SlowTransferError)


def test_read_timeout_fires(h: Harness, srv: FaultServer) -> None:
    def fn(ex: Exchange) -> None:
        time.sleep(1.0)
        ex.serve(DATA)

    options = FetchOptions(allow_http=True, read_timeout=0.3, min_rate=0)
    err = h.fail(h.item(srv.add("/f", fn), retries=0), options)
    assert isinstance(err, TransferError) and "timed out" in str(err)


def test_a_fast_download_is_not_taken_for_a_slow_one(h: Harness, srv: FaultServer) -> None:
    # 1 MiB/s (in 256 KiB bursts) for 1 s, a 1 KiB/s minimum over 0.6 s windows: none fails
    url = srv.add("/f", lambda ex: ex.serve(DATA, rate=1024 * 1024))
    options = FetchOptions(allow_http=True, min_rate=1024, min_rate_window=0.6)
    assert h.fetch(h.item(url, retries=0), options).read_bytes() == DATA
