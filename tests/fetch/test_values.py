"""Values validate themselves, and no secret reaches a message, an event or a log line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bootstrapper.fetch import Download, FetchOptions, redact_url
from tests.fetch.conftest import DATA, Harness, sha
from tests.support.httpfault import FaultServer

GOOD = "0" * 64


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://user:pw@example.org/f.pkg", "credentials"),
        ("https://token@example.org/f.pkg", "credentials"),
        ("ftp://example.org/f.pkg", "https"),
        ("file://host/etc/passwd", "https"),
        ("https:///nohost", "https"),
    ],
)
def test_bad_urls_are_refused_when_the_item_is_built(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        Download("k", url, Path("/tmp/x"), GOOD)
    assert "pw" not in str(info.value)


@pytest.mark.parametrize("digest", ["0" * 63, "g" * 64, "", "0" * 65])
def test_bad_hashes_are_refused(digest: str) -> None:
    with pytest.raises(ValueError, match="64 hex digits"):
        Download("k", "https://example.org/f", Path("/tmp/x"), digest)


def test_header_injection_is_refused() -> None:
    with pytest.raises(ValueError, match="line break"):
        Download("k", "https://example.org/f", Path("/tmp/x"), GOOD, headers={"X-A": "v\r\nX-Evil: 1"})
    with pytest.raises(ValueError, match="token"):
        FetchOptions(auth_headers={"example.org": {"Bad Name": "v"}})


def test_upper_case_hash_is_normalized() -> None:
    assert Download("k", "https://example.org/f", Path("/tmp/x"), "AB" * 32).sha256 == "ab" * 32


def test_redacted_urls_keep_no_userinfo_and_no_query_values() -> None:
    url = "https://me:pw@cdn.example.org/f.pkg?X-Amz-Signature=abc123&X-Amz-Expires=60"
    assert redact_url(url) == "https://cdn.example.org/f.pkg?X-Amz-Signature=***&X-Amz-Expires=***"


def test_a_local_path_is_shown_as_it_is() -> None:
    assert redact_url("/Users/admin/my#1 manifest?.yaml") == "/Users/admin/my#1 manifest?.yaml"
    assert redact_url("https://u:p@h/m.yaml#frag") == "https://h/m.yaml"


def test_secrets_never_reach_errors_events_or_logs(
    h: Harness, srv: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = srv.add("/f", lambda ex: ex.reply(503)) + "?sig=query-secret-123"
    options = FetchOptions(
        allow_http=True, auth_headers={"localhost": {"Authorization": "Bearer host-secret"}}
    )
    item = h.item(url, headers={"X-Token": "item-secret-456"}, retries=1)
    with caplog.at_level(logging.DEBUG):
        err = h.fail(item, options)
    assert srv.seen[0].headers["authorization"] == "Bearer host-secret"
    shown = " ".join([str(err), caplog.text, *(repr(e) for e in h.events)])
    for secret in ("query-secret-123", "host-secret", "item-secret-456"):
        assert secret not in shown
    assert "sig=***" in str(err)


def test_item_is_fetched_with_its_headers(h: Harness, srv: FaultServer) -> None:
    url = srv.add("/f", lambda ex: ex.serve(DATA))
    h.fetch(h.item(url, headers={"X-Device": "C02ABC"}))
    seen = srv.seen[0].headers
    assert seen["x-device"] == "C02ABC"
    assert seen["accept-encoding"] == "identity"
    assert sha(DATA) == h.item(url).sha256


def test_file_items_are_refused_unless_the_manifest_came_from_this_disk(tmp_path: Path) -> None:
    import asyncio
    import hashlib

    from bootstrapper.errors import UnsafeURLError
    from bootstrapper.fetch import Downloader, FetchOptions

    source = tmp_path / "s.sh"
    source.write_bytes(b"x")
    item = Download("k", source.as_uri(), tmp_path / "out" / "s.sh", hashlib.sha256(b"x").hexdigest())

    async def fetch(options: FetchOptions) -> Path:
        async with Downloader(options, tmp_path / "staging") as d:
            return await d.fetch(item)

    with pytest.raises(UnsafeURLError, match="file:// items belong to a manifest on this disk"):
        asyncio.run(fetch(FetchOptions()))
    assert asyncio.run(fetch(FetchOptions(local_files=True))).read_bytes() == b"x"
