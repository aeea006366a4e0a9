"""Many items at once: bounded concurrency, one result per key, throttled events."""

from __future__ import annotations

import asyncio
import os

import pytest

from bootstrapper.errors import ClientStatusError
from bootstrapper.fetch import Download, FetchOptions, Finished, Progress, Started
from tests.fetch.conftest import DATA, Harness, sha
from tests.support.httpfault import FaultServer


def run_all(h: Harness, items: list[Download], options: FetchOptions) -> dict[str, object]:
    async def go() -> dict[str, object]:
        async with h.downloader(options) as d:
            return dict(await d.fetch_all(items))

    return asyncio.run(go())


def test_fetch_all_is_bounded_and_reports_each_item(h: Harness, srv: FaultServer) -> None:
    blobs = [os.urandom(200_000) for _ in range(8)]
    items = []
    for n, blob in enumerate(blobs):
        url = srv.add(f"/{n}", lambda ex, blob=blob: ex.serve(blob, rate=1_000_000))  # type: ignore[misc]
        items.append(Download(f"userland[{n}]", url, h.root / "out" / f"{n}.bin", sha(blob), len(blob)))
    items.append(Download("userland[8]", srv.url("/missing"), h.root / "out" / "8.bin", "0" * 64))

    results = run_all(h, items, FetchOptions(allow_http=True, concurrency=3))

    assert list(results) == [item.key for item in items]
    for n, blob in enumerate(blobs):
        assert (h.root / "out" / f"{n}.bin").read_bytes() == blob
    assert isinstance(results["userland[8]"], ClientStatusError)
    assert srv.peak == 3


def test_progress_events_are_throttled(h: Harness, srv: FaultServer) -> None:
    data = DATA * 4
    url = srv.add("/f", lambda ex: ex.serve(data, rate=4_000_000))  # about one second, 16+ chunks
    h.fetch(h.item(url, data))
    progress = [e for e in h.events if isinstance(e, Progress)]
    assert 2 <= len(progress) <= 8
    assert progress[-1].done == len(data) and progress[-1].total == len(data)
    assert [p.done for p in progress] == sorted(p.done for p in progress)
    assert isinstance(h.events[0], Started)
    assert h.events[-1] == Finished("userland[0]", h.dest, len(data))


def test_transferred_comes_once_the_bytes_are_in_before_the_file_is_placed(
    h: Harness, srv: FaultServer
) -> None:
    """The prefetcher starts the next large item on it, while this one is still being placed."""
    data = DATA * 4
    url = srv.add("/f", lambda ex: ex.serve(data))
    seen: list[tuple[bool, int]] = []

    def transferred() -> None:
        seen.append((h.dest.exists(), sum(isinstance(e, Finished) for e in h.events)))

    async def go() -> None:
        async with h.downloader(FetchOptions(allow_http=True)) as d:
            await d.fetch(h.item(url, data), transferred=transferred)
            bad = Download("userland[1]", srv.url("/missing"), h.root / "out" / "x.bin", "0" * 64)
            with pytest.raises(ClientStatusError):
                await d.fetch(bad, transferred=transferred)

    asyncio.run(go())
    assert seen == [(False, 0)]
    assert h.dest.read_bytes() == data
