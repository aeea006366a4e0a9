"""Which failures are retried, how long we wait, and what is never retried."""

from __future__ import annotations

import pytest

from bootstrapper.errors import ClientStatusError, HashMismatchError, RetryableStatusError
from bootstrapper.fetch import FetchOptions, Retrying
from tests.fetch.conftest import DATA, Harness, sha
from tests.support.httpfault import Exchange, FaultServer

PORTAL = b"<html><body>Please log in to the hotel Wi-Fi</body></html>"


def test_5xx_three_times_then_success_waits_three_times(h: Harness, srv: FaultServer) -> None:
    def fn(ex: Exchange) -> None:
        if ex.index < 3:
            ex.reply((500, 502, 503)[ex.index], b"busy")
        else:
            ex.serve(DATA)

    assert h.fetch(h.item(srv.add("/f", fn), retries=3, retrywait=2.0)).read_bytes() == DATA
    assert len(h.sleeps) == 3
    # exponential from retrywait, with at most 25 % jitter on top
    for n, wait in enumerate(h.sleeps):
        assert 2.0 * 2**n <= wait <= 2.0 * 2**n * 1.25
    retried = [e for e in h.events if isinstance(e, Retrying)]
    assert [e.attempt for e in retried] == [1, 2, 3]
    assert "HTTP 500" in retried[0].reason


def test_5xx_beyond_the_attempts_fails_with_a_transfer_error(h: Harness, srv: FaultServer) -> None:
    url = srv.add("/f", lambda ex: ex.reply(503, b"down"))
    err = h.fail(h.item(url, retries=2))
    assert isinstance(err, RetryableStatusError)
    assert len(srv.requests("/f")) == 3
    assert len(h.sleeps) == 2
    assert url in str(err) and "503" in str(err)
    assert not h.dest.exists()


def test_backoff_is_capped(h: Harness, srv: FaultServer) -> None:
    url = srv.add("/f", lambda ex: ex.reply(500))
    h.fail(h.item(url, retries=6, retrywait=5.0), FetchOptions(allow_http=True, backoff_cap=12.0))
    assert len(h.sleeps) == 6
    assert max(h.sleeps) == 12.0


@pytest.mark.parametrize("status", [408, 425, 429])
def test_throttling_statuses_are_retried(h: Harness, srv: FaultServer, status: int) -> None:
    def fn(ex: Exchange) -> None:
        ex.reply(status) if ex.index == 0 else ex.serve(DATA)

    assert h.fetch(h.item(srv.add("/f", fn))).read_bytes() == DATA
    assert len(h.sleeps) == 1


def test_retry_after_is_honoured_up_to_the_cap(h: Harness, srv: FaultServer) -> None:
    def fn(ex: Exchange) -> None:
        wait = ("30", "86400")[ex.index] if ex.index < 2 else None
        ex.reply(429, b"", {"Retry-After": wait}) if wait else ex.serve(DATA)

    options = FetchOptions(allow_http=True, retry_after_cap=100.0)
    assert h.fetch(h.item(srv.add("/f", fn), retrywait=1.0), options).read_bytes() == DATA
    assert h.sleeps[0] == 30.0  # the server asked for more than our backoff
    assert h.sleeps[1] == 100.0  # a day, capped


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_client_errors_are_not_retried(h: Harness, srv: FaultServer, status: int) -> None:
    url = srv.add("/f", lambda ex: ex.reply(status, b"no"))
    err = h.fail(h.item(url, retries=5))
    assert isinstance(err, ClientStatusError) and err.status == status
    assert h.sleeps == []
    assert len(srv.requests("/f")) == 1
    assert str(err).startswith(f"{url}: HTTP {status}")
    assert "\n" not in str(err)


def test_401_names_the_fix(h: Harness, srv: FaultServer) -> None:
    err = h.fail(h.item(srv.add("/f", lambda ex: ex.reply(401))))
    assert "auth headers" in str(err)


def test_captive_portal_page_is_never_accepted(h: Harness, srv: FaultServer) -> None:
    url = srv.add("/f", lambda ex: ex.reply(200, PORTAL, {"Content-Type": "text/html"}))
    err = h.fail(h.item(url, size=None, retries=2))
    assert isinstance(err, HashMismatchError)
    assert err.expected == sha(DATA) and err.actual == sha(PORTAL)
    assert sha(DATA) in str(err) and sha(PORTAL) in str(err)
    # fetched again from zero each time, never resumed from the portal's bytes
    assert [("range" in s.headers) for s in srv.requests("/f")] == [False, False, False]
    assert len(h.sleeps) == 2
    assert h.parts() == []
    assert not h.dest.exists()


def test_hash_mismatch_then_the_real_file_succeeds(h: Harness, srv: FaultServer) -> None:
    def fn(ex: Exchange) -> None:
        ex.reply(200, PORTAL) if ex.index == 0 else ex.serve(DATA)

    assert h.fetch(h.item(srv.add("/f", fn), size=None)).read_bytes() == DATA
    assert len(h.sleeps) == 1


def test_connection_refused_is_retried(h: Harness, srv: FaultServer) -> None:
    url = f"http://127.0.0.1:{srv.port}/f"
    srv.__exit__(None, None, None)
    err = h.fail(h.item(url, retries=1))
    assert "check the network" in str(err)
    assert len(h.sleeps) == 1
