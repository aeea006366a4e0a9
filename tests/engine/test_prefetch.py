"""The prefetcher's bounds: bytes waiting on disk, and large downloads only on connections that pay;
small items never wait behind large ones."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bootstrapper.fetch import Download
from bootstrapper.fetch.segments import SMALL_BYTES, Link

MB = 10 * SMALL_BYTES


class FakeDownloader:
    """Finishes a download when the test says so; records what started, and on what terms."""

    def __init__(self, allowed: int = 1) -> None:
        self.started: list[str] = []
        self.small: dict[str, bool] = {}
        self.gates: dict[str, asyncio.Event] = {}
        #: Items whose placing (after their bytes are in) waits for the test, like a slow disk.
        self.placing: dict[str, asyncio.Event] = {}
        self.link = Link(4)
        self.link.allowed = allowed
        self.watchers: list[Callable[[], None]] = []

    def spare(self) -> bool:
        return self.link.in_use < self.link.allowed

    def watch_spare(self, callback: Callable[[], None]) -> None:
        self.watchers.append(callback)

    def more_pay(self, allowed: int) -> None:
        self.link.allowed = allowed
        for w in self.watchers:
            w()

    async def fetch(
        self, item: Download, *, small: bool = False, transferred: Callable[[], None] = lambda: None
    ) -> Path:
        self.started.append(item.key)
        self.small[item.key] = small
        if not small:
            self.link.in_use += 1
        gate = self.gates.setdefault(item.key, asyncio.Event())
        try:
            await gate.wait()
        finally:
            if not small:
                self.link.in_use -= 1
                if self.spare():
                    for w in self.watchers:
                        w()
        transferred()
        if item.key in self.placing:
            await self.placing[item.key].wait()
        return item.dest


def _item(key: str, size: int | None) -> Download:
    return Download(key=key, url=f"https://e.com/{key}", dest=Path(f"/tmp/{key}"), sha256="a" * 64, size=size)


def _prefetcher(fake: FakeDownloader, budget: int) -> Any:
    from bootstrapper.engine.prefetch import Prefetcher

    return Prefetcher(fake, lookahead_bytes=budget)  # type: ignore[arg-type]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0.005)


def test_lookahead_bytes_bound_what_waits_on_disk() -> None:
    async def scenario() -> list[list[str]]:
        fake = FakeDownloader(allowed=4)
        pre = _prefetcher(fake, budget=25 * MB)
        pre.add([_item("a", 10 * MB), _item("b", 10 * MB), _item("c", 10 * MB)])
        await _settle()
        seen = [list(fake.started)]
        fake.gates["a"].set()
        await pre.get("a")
        await _settle()
        seen.append(list(fake.started))  # a is done but still on disk: c must wait
        await pre.release("a")
        await _settle()
        seen.append(list(fake.started))
        for gate in fake.gates.values():
            gate.set()
        await pre.aclose()
        return seen

    assert asyncio.run(scenario()) == [["a", "b"], ["a", "b"], ["a", "b", "c"]]


def test_a_download_larger_than_the_budget_still_starts_alone() -> None:
    async def scenario() -> list[str]:
        fake = FakeDownloader()
        pre = _prefetcher(fake, budget=5)
        pre.add([_item("huge", 100 * MB)])
        await _settle()
        fake.gates["huge"].set()
        await pre.get("huge")
        await pre.aclose()
        return fake.started

    assert asyncio.run(scenario()) == ["huge"]


def test_next_large_file_waits_for_a_connection_that_pays() -> None:
    async def scenario() -> list[Any]:
        fake = FakeDownloader(allowed=1)
        pre = _prefetcher(fake, budget=10**12)
        pre.add([_item("a", 50 * MB), _item("b", 50 * MB)])
        await _settle()
        first = list(fake.started)
        fake.more_pay(2)  # the link measured that a second connection adds speed
        await _settle()
        second = list(fake.started)
        for gate in fake.gates.values():
            gate.set()
        await pre.aclose()
        return [first, second]

    assert asyncio.run(scenario()) == [["a"], ["a", "b"]]


def test_next_large_file_starts_while_the_one_before_is_placed() -> None:
    """Placing a file (rename, sync) needs no link: the next large file has it meanwhile."""

    async def scenario() -> list[Any]:
        fake = FakeDownloader(allowed=1)
        fake.placing["a"] = asyncio.Event()
        pre = _prefetcher(fake, budget=10**12)
        pre.add([_item("a", 50 * MB), _item("b", 50 * MB)])
        await _settle()
        first = list(fake.started)
        fake.gates["a"].set()  # a's bytes are in; it is not placed yet
        await _settle()
        second = list(fake.started)
        placed = pre._results["a"].done()
        fake.placing["a"].set()
        for gate in fake.gates.values():
            gate.set()
        await pre.get("a")
        await pre.aclose()
        return [first, second, placed]

    assert asyncio.run(scenario()) == [["a"], ["a", "b"], False]


def test_next_large_file_starts_when_the_one_before_is_in() -> None:
    async def scenario() -> list[Any]:
        fake = FakeDownloader(allowed=1)
        pre = _prefetcher(fake, budget=10**12)
        pre.add([_item("a", 50 * MB), _item("b", 50 * MB)])
        await _settle()
        first = list(fake.started)
        fake.gates["a"].set()
        await pre.get("a")
        await _settle()
        second = list(fake.started)
        for gate in fake.gates.values():
            gate.set()
        await pre.aclose()
        return [first, second]

    assert asyncio.run(scenario()) == [["a"], ["a", "b"]]


def test_small_items_start_at_once_beside_a_large_file() -> None:
    async def scenario() -> tuple[list[str], dict[str, bool]]:
        fake = FakeDownloader(allowed=1)
        pre = _prefetcher(fake, budget=10**12)
        items = [
            _item("big1", 50 * MB),
            _item("script1", None),
            _item("big2", 50 * MB),
            _item("tiny", 2000),
        ]
        pre.add(items, small={"script1"})
        await _settle()
        started = list(fake.started)
        for gate in fake.gates.values():
            gate.set()
        await _settle()
        await pre.aclose()
        return started, fake.small

    started, small = asyncio.run(scenario())
    assert started == ["big1", "script1", "tiny"], "big2 waits for a connection; the small ones do not"
    assert small == {"big1": False, "script1": True, "tiny": True, "big2": False}


def test_small_items_beyond_the_window_wait() -> None:
    async def scenario() -> list[str]:
        fake = FakeDownloader(allowed=1)
        pre = _prefetcher(fake, budget=60 * MB)
        pre.add([_item("big1", 50 * MB), _item("big2", 50 * MB), _item("tiny", 2000)])
        await _settle()
        started = list(fake.started)
        for gate in fake.gates.values():
            gate.set()
        await pre.aclose()
        return started

    assert asyncio.run(scenario()) == ["big1"]
