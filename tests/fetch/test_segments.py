"""Large files come in several Range segments on parallel connections, and every fault is handled."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import hashlib
import os
import threading
from pathlib import Path

import pytest

from bootstrapper.errors import DiskFullError, TransferError
from bootstrapper.fetch.segments import (
    LATENCY_WINDOWS,
    PROBE_SECONDS,
    SEGMENT_MIN,
    Assembly,
    Link,
    gaps,
    merge,
)
from tests.fetch.conftest import Harness, sha
from tests.support.httpfault import Exchange, FaultServer

BIG = os.urandom(SEGMENT_MIN + 24 * 1024 * 1024)
#: Bytes per second per connection: slow enough that the other segments start before the first ends.
RATE = 48 * 1024 * 1024


def ranged(ex: Exchange, data: bytes = BIG, *, etag: str = '"v1"', cut_after: int | None = None) -> None:
    """A file server that answers `bytes=a-b` (and `bytes=a-`) ranges, honouring If-Range."""
    headers = {"Accept-Ranges": "bytes", "ETag": etag}
    asked = ex.headers.get("range")
    if asked and ex.headers.get("if-range") in (None, etag):
        first, _, last = asked.removeprefix("bytes=").partition("-")
        start, end = int(first), int(last) if last else len(data) - 1
        if start >= len(data):
            ex.reply(416, b"", {**headers, "Content-Range": f"bytes */{len(data)}"})
            return
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        ex.reply(206, data[start : end + 1], headers, cut_after=cut_after, reset=True, rate=RATE)
        return
    ex.reply(200, data, headers, cut_after=cut_after, reset=True, rate=RATE)


def asked(ex_or_seen: dict[str, str]) -> tuple[int, int] | None:
    value = ex_or_seen.get("range")
    if value is None:
        return None
    first, _, last = value.removeprefix("bytes=").partition("-")
    return int(first), int(last) + 1 if last else len(BIG)


def fetch_wide(h: Harness, url: str, connections: int = 4, **kw: object) -> Path:
    """Fetch BIG with the link already known to pay for `connections` connections."""

    async def go() -> Path:
        async with h.downloader() as d:
            d.link.allowed = connections
            return await d.fetch(h.item(url, BIG, **kw))

    return asyncio.run(go())


def test_large_file_is_fetched_in_range_segments_within_the_ceiling(h: Harness, srv: FaultServer) -> None:
    url = srv.add("/big", ranged)

    assert fetch_wide(h, url).read_bytes() == BIG

    seen = srv.requests("/big")
    assert "range" not in seen[0].headers
    segments = [asked(s.headers) for s in seen[1:]]
    assert len(segments) >= 2, "more connections paid, so the file must have been split"
    assert all(s.headers["if-range"] == '"v1"' for s in seen[1:])
    assert srv.peak <= 4
    assert h.parts() == []


def test_server_without_ranges_gets_one_stream(h: Harness, srv: FaultServer) -> None:
    def fn(ex: Exchange) -> None:
        ex.reply(200, BIG, {"ETag": '"v1"'}, rate=RATE)

    assert fetch_wide(h, srv.add("/big", fn)).read_bytes() == BIG
    assert len(srv.requests("/big")) == 1


def test_concurrency_setting_is_the_ceiling(h: Harness, srv: FaultServer) -> None:
    url = srv.add("/big", ranged)

    async def go() -> Path:
        async with h.downloader(dataclasses.replace(h.options, concurrency=1)) as d:
            return await d.fetch(h.item(url, BIG))

    assert asyncio.run(go()).read_bytes() == BIG
    assert len(srv.requests("/big")) == 1


def test_reset_in_one_segment_resumes_only_the_missing_range(h: Harness, srv: FaultServer) -> None:
    state = {"cut": False}
    lock = threading.Lock()

    def fn(ex: Exchange) -> None:
        span = asked(ex.headers)
        with lock:
            cut = span is not None and span[0] > 0 and not state["cut"]
            state["cut"] = state["cut"] or cut
        ranged(ex, cut_after=1024 * 1024 if cut else None)

    url = srv.add("/big", fn)
    assert fetch_wide(h, url).read_bytes() == BIG

    assert len(h.sleeps) == 1
    seen = srv.requests("/big")
    spans = [asked(s.headers) for s in seen]
    # after the wait, only ranges not yet on disk are asked for: far less than the whole file
    retried = [s for s in spans[-2:] if s is not None]
    assert retried, "the retry must ask for ranges, not the whole file"
    assert sum(end - start for start, end in retried) < len(BIG) // 2
    assert all(s.headers.get("if-range") == '"v1"' for s in seen[1:])


def test_a_killed_run_resumes_only_the_missing_segments(h: Harness, srv: FaultServer) -> None:
    state = {"cut": False}

    def fn(ex: Exchange) -> None:
        span = asked(ex.headers)
        cut = span is not None and span[0] > 0 and not state["cut"]
        state["cut"] = state["cut"] or cut
        ranged(ex, cut_after=1024 * 1024 if cut else None)

    url = srv.add("/big", fn)
    with pytest.raises(TransferError):
        fetch_wide(h, url, retries=0)
    sidecar = next(p for p in h.parts() if p.name.endswith(".json")).read_text()
    assert '"segments"' in sidecar
    before = len(srv.requests("/big"))

    assert fetch_wide(h, url).read_bytes() == BIG
    again = srv.requests("/big")[before:]
    assert all("range" in s.headers and s.headers["if-range"] == '"v1"' for s in again)
    assert sum(e - s for s, e in (asked(x.headers) or (0, 0) for x in again)) < len(BIG)


def test_416_on_one_segment_starts_over_as_one_stream(h: Harness, srv: FaultServer) -> None:
    def fn(ex: Exchange) -> None:
        span = asked(ex.headers)
        if span is not None and span[0] > 0:
            ex.reply(416, b"", {"Content-Range": f"bytes */{len(BIG)}"})
            return
        ranged(ex)

    assert fetch_wide(h, srv.add("/big", fn)).read_bytes() == BIG
    seen = srv.requests("/big")
    assert "range" not in seen[-1].headers, "the last request is one stream from zero"
    assert h.sleeps == [], "a refused range restarts at once, without a wait"


def test_server_that_stops_honouring_ranges_falls_back_to_one_stream(h: Harness, srv: FaultServer) -> None:
    def fn(ex: Exchange) -> None:
        ex.reply(200, BIG, {"Accept-Ranges": "bytes", "ETag": '"v1"'}, rate=RATE)

    assert fetch_wide(h, srv.add("/big", fn)).read_bytes() == BIG
    seen = srv.requests("/big")
    assert "range" not in seen[-1].headers
    assert [("range" in s.headers) for s in seen].count(False) == 2, "one restart, then one stream"
    assert h.sleeps == []


def test_etag_changed_between_segments_starts_over(h: Harness, srv: FaultServer) -> None:
    new = os.urandom(len(BIG))

    def fn(ex: Exchange) -> None:
        if ex.index == 0:
            ranged(ex, BIG, etag='"v1"')
        else:  # the file was replaced after the first answer; this server ignores If-Range
            span = asked(ex.headers)
            if span is None:
                ranged(ex, new, etag='"v2"')
                return
            start, end = span
            ex.reply(
                206,
                new[start:end],
                {"ETag": '"v2"', "Content-Range": f"bytes {start}-{end - 1}/{len(new)}"},
                rate=RATE,
            )

    url = srv.add("/big", fn)

    async def go() -> Path:
        async with h.downloader() as d:
            d.link.allowed = 4
            return await d.fetch(h.item(url, new))

    assert asyncio.run(go()).read_bytes() == new
    seen = srv.requests("/big")
    restart = max(i for i, x in enumerate(seen) if "range" not in x.headers)
    assert restart > 0, "the changed file is fetched again from zero"
    assert all(x.headers["if-range"] == '"v2"' for x in seen[restart + 1 :])
    assert h.sleeps == []


def test_wrong_content_range_on_a_segment_is_a_transfer_error(h: Harness, srv: FaultServer) -> None:
    state = {"lied": False}

    def fn(ex: Exchange) -> None:
        span = asked(ex.headers)
        if span is not None and span[0] > 0 and not state["lied"]:
            state["lied"] = True
            start = span[0] - 10  # ten bytes early: written at the asked offset it would corrupt the file
            ex.reply(
                206,
                BIG[start : span[1]],
                {"ETag": '"v1"', "Content-Range": f"bytes {start}-{span[1] - 1}/{len(BIG)}"},
            )
            return
        ranged(ex)

    assert fetch_wide(h, srv.add("/big", fn)).read_bytes() == BIG
    assert len(h.sleeps) == 1, "a transfer error: retried after a wait"


def test_query_token_never_reaches_the_sidecar(h: Harness, srv: FaultServer) -> None:
    token = "s3cr3t-signature-value"

    def fn(ex: Exchange) -> None:
        ranged(ex, cut_after=3 * 1024 * 1024)

    url = srv.add("/big", fn) + f"?X-Amz-Signature={token}"
    with pytest.raises(TransferError):
        fetch_wide(h, url, retries=0)
    sidecars = [p for p in h.parts() if p.name.endswith(".json")]
    assert sidecars
    for p in sidecars:
        assert token not in p.read_text()
        assert "X-Amz-Signature=***" in p.read_text()


def test_query_token_never_reaches_a_small_files_sidecar_and_it_still_resumes(
    h: Harness, srv: FaultServer
) -> None:
    token = "s3cr3t-signature-value"
    data = os.urandom(300_000)

    def fn(ex: Exchange) -> None:
        ex.serve(data, cut_after=100_000 if ex.index == 0 else None)

    url = srv.add("/s", fn) + f"?sig={token}"
    h.fail(h.item(url, data, retries=0))
    sidecars = [p for p in h.parts() if p.name.endswith(".json")]
    assert sidecars
    assert all(token not in p.read_text() for p in sidecars)

    assert h.fetch(h.item(url, data)).read_bytes() == data
    assert srv.requests("/s")[1].headers["range"].startswith("bytes=")


def test_disk_full_in_a_segment_removes_the_part(h: Harness, srv: FaultServer) -> None:
    room = [5 * 1024 * 1024]

    def fills_up(fd: int, view: memoryview) -> int:
        if room[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = os.write(fd, view[: room[0]])
        room[0] -= n
        return n

    url = srv.add("/big", ranged)

    async def go() -> None:
        async with h.downloader(write=fills_up) as d:
            d.link.allowed = 4
            await d.fetch(h.item(url, BIG))

    with pytest.raises(DiskFullError, match="disk is full"):
        asyncio.run(go())
    assert h.parts() == []
    assert not h.dest.exists()


def test_a_segment_gives_its_connection_on_once_its_bytes_are_in(h: Harness, srv: FaultServer) -> None:
    """Writing its last bytes (and hashing what other segments wrote ahead) needs the disk, not the
    link: while that last write is held up, the freed connection already takes half of a slow
    segment's rest."""
    mid: dict[str, int] = {}
    third = threading.Event()

    def fn(ex: Exchange) -> None:
        span = asked(ex.headers)
        if ex.index == 1 and span is not None:
            mid["at"] = span[0]
            ex.reply(206, BIG[span[0] :], {"Accept-Ranges": "bytes", "ETag": '"v1"',
                     "Content-Range": f"bytes {span[0]}-{len(BIG) - 1}/{len(BIG)}"},
                     reset=True, rate=RATE / 6)  # fmt: skip
            return
        if ex.index >= 2:
            third.set()
        ranged(ex)

    held: list[bool] = []

    def write(fd: int, view: memoryview) -> int:
        if "at" in mid and not held and os.lseek(fd, 0, os.SEEK_CUR) + len(view) == mid["at"]:
            held.append(third.wait(5))  # the first segment's last write: is the split already asked?
        return os.write(fd, view)

    url = srv.add("/big", fn)

    async def go() -> Path:
        async with h.downloader(dataclasses.replace(h.options, concurrency=2), write=write) as d:
            d.link.allowed = 2  # and no more: only a freed connection can ask for a third range
            return await d.fetch(h.item(url, BIG))

    assert asyncio.run(go()).read_bytes() == BIG
    assert held == [True]


def test_assembly_hashes_out_of_order_writes_in_order(tmp_path: Path) -> None:
    data = os.urandom(5 * 1024 * 1024)
    fd = os.open(tmp_path / "p", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        asm = Assembly(fd, os.write, [])
        mb = 1024 * 1024
        for start in (3 * mb, 1 * mb, 0, 4 * mb, 2 * mb):
            asm.put(start, data[start : start + mb])
        assert asm.hexdigest() == sha(data)
        assert asm.done() == [(0, len(data))]
        assert asm.reread == 3 * mb  # only what arrived ahead of the frontier is read back
    finally:
        os.close(fd)


def test_assembly_resumes_from_ranges_on_disk(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024)
    (tmp_path / "p").write_bytes(data[:1_000_000] + bytes(len(data) - 1_000_000))
    fd = os.open(tmp_path / "p", os.O_RDWR)
    try:
        asm = Assembly(fd, os.write, [(0, 1_000_000)])
        asm.catch_up()
        assert asm.hashed() == 1_000_000
        asm.put(1_000_000, data[1_000_000:])
        assert asm.hexdigest() == hashlib.sha256(data).hexdigest()
    finally:
        os.close(fd)


def test_gaps_and_merge() -> None:
    assert merge([(5, 9), (0, 3), (3, 4), (8, 12)]) == [(0, 4), (5, 12)]
    assert gaps([(0, 4), (5, 12)], 20) == [(4, 5), (12, 20)]
    assert gaps([], 7) == [(0, 7)]
    assert gaps([(0, 7)], 7) == []


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _window(link: Link, clock: Clock, rate: float) -> bool:
    link.in_use = link.allowed
    link.tick()
    clock.now += link.window
    link.add_bytes(int(rate * link.window))
    return link.tick()


def test_link_doubles_connections_while_they_add_speed() -> None:
    clock = Clock()
    link = Link(4, clock)
    assert _window(link, clock, 12e6)
    assert link.allowed == 2
    assert _window(link, clock, 24e6)
    assert link.allowed == 4
    assert not _window(link, clock, 48e6)
    assert link.allowed == 4


def test_link_gives_back_connections_that_only_share_it_and_rests() -> None:
    from bootstrapper.fetch.segments import BACKOFF_SECONDS

    clock = Clock()
    link = Link(4, clock)
    assert _window(link, clock, 24e6)
    assert link.allowed == 2
    assert _window(link, clock, 24e6)
    assert link.allowed == 1
    assert not _window(link, clock, 24e6)
    clock.now += BACKOFF_SECONDS
    link.add_bytes(int(24e6 * BACKOFF_SECONDS))
    assert link.tick()
    assert link.allowed == 2


def test_link_measures_longer_where_requests_take_longer() -> None:
    link = Link(4)
    assert link.window == PROBE_SECONDS
    link.note_latency(0.25)  # a far server: a new connection needs a while before it shows its speed
    assert link.window == pytest.approx(LATENCY_WINDOWS * 0.25)


def test_link_ignores_windows_with_idle_connections() -> None:
    clock = Clock()
    link = Link(4, clock)
    link.in_use = 0
    link.tick()
    clock.now += 5
    link.add_bytes(10**9)
    assert not link.tick()
    assert link.allowed == 1
