"""The prefetcher's two bounds: bytes waiting on disk, and downloads in flight (found by a hill climb)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bootstrapper.engine.prefetch import BACKOFF_SECONDS, PROBE_SECONDS, Prefetcher, Ramp
from bootstrapper.fetch import Download


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _measure(ramp: Ramp, clock: Clock, rate: float) -> bool:
    """One probe window at `rate` bytes/s; True when the ramp changed its mind."""
    ramp.tick(saturated=True)
    clock.now += PROBE_SECONDS
    ramp.add_bytes(int(rate * PROBE_SECONDS))
    return ramp.tick(saturated=True)


def test_ramp_adds_connections_while_each_one_adds_speed() -> None:
    clock = Clock()
    ramp = Ramp(4, clock)
    assert ramp.allowed == 1
    for expected in (2, 3, 4):
        assert _measure(ramp, clock, rate=10e6 * ramp.allowed)
        assert ramp.allowed == expected
    assert not _measure(ramp, clock, rate=40e6)
    assert ramp.allowed == 4


def test_ramp_gives_back_a_connection_that_only_shares_the_link() -> None:
    clock = Clock()
    ramp = Ramp(4, clock)
    assert _measure(ramp, clock, rate=24e6)
    assert ramp.allowed == 2
    assert _measure(ramp, clock, rate=24e6)  # no gain: the link was already full
    assert ramp.allowed == 1
    # It rests before probing again.
    assert not _measure(ramp, clock, rate=24e6)
    assert ramp.allowed == 1
    clock.now += BACKOFF_SECONDS
    ramp.add_bytes(int(24e6 * BACKOFF_SECONDS))
    assert ramp.tick(saturated=True)
    assert ramp.allowed == 2


def test_ramp_ignores_windows_when_nothing_waits() -> None:
    clock = Clock()
    ramp = Ramp(4, clock)
    ramp.tick(saturated=False)
    clock.now += 5
    ramp.add_bytes(10**9)
    assert not ramp.tick(saturated=False)
    assert ramp.allowed == 1


class FakeDownloader:
    """Finishes a download when the test says so; records what started."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}

    async def fetch(self, item: Download) -> Path:
        self.started.append(item.key)
        gate = self.gates.setdefault(item.key, asyncio.Event())
        await gate.wait()
        return item.dest


def _item(key: str, size: int) -> Download:
    return Download(key=key, url=f"https://e.com/{key}", dest=Path(f"/tmp/{key}"), sha256="a" * 64, size=size)


def test_lookahead_bytes_bound_what_waits_on_disk() -> None:
    async def scenario() -> list[list[str]]:
        fake = FakeDownloader()
        pre = Prefetcher(fake, concurrency=4, lookahead_bytes=25)  # type: ignore[arg-type]
        pre.ramp.allowed = 4
        pre.add([_item("a", 10), _item("b", 10), _item("c", 10)])
        await asyncio.sleep(0.01)
        seen = [list(fake.started)]
        fake.gates["a"].set()
        await pre.get("a")
        await asyncio.sleep(0.01)
        seen.append(list(fake.started))  # a is done but still on disk: c must wait
        await pre.release("a")
        await asyncio.sleep(0.01)
        seen.append(list(fake.started))
        for gate in fake.gates.values():
            gate.set()
        await pre.aclose()
        return seen

    assert asyncio.run(scenario()) == [["a", "b"], ["a", "b"], ["a", "b", "c"]]


def test_a_download_larger_than_the_budget_still_starts_alone() -> None:
    async def scenario() -> list[str]:
        fake = FakeDownloader()
        pre = Prefetcher(fake, concurrency=4, lookahead_bytes=5)  # type: ignore[arg-type]
        pre.add([_item("huge", 100)])
        await asyncio.sleep(0.01)
        fake.gates["huge"].set()
        await pre.get("huge")
        await pre.aclose()
        return fake.started

    assert asyncio.run(scenario()) == ["huge"]


def test_one_download_in_flight_until_the_ramp_allows_more() -> None:
    async def scenario() -> list[Any]:
        fake = FakeDownloader()
        pre = Prefetcher(fake, concurrency=4, lookahead_bytes=10**9)  # type: ignore[arg-type]
        pre.add([_item("a", 1), _item("b", 1)])
        await asyncio.sleep(0.01)
        first = list(fake.started)
        pre.ramp.allowed = 2
        await pre._notify()
        await asyncio.sleep(0.01)
        second = list(fake.started)
        for gate in fake.gates.values():
            gate.set()
        await pre.aclose()
        return [first, second]

    assert asyncio.run(scenario()) == [["a"], ["a", "b"]]
