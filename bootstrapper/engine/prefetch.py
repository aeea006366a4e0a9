"""Download ahead of the step being run, in manifest order, without flooding the disk or the link.

Two bounds: the bytes that may sit downloaded but not yet used (`lookahead_bytes`), and the downloads
in flight. The second is found, not fixed: a Mac's link is one shared budget, so when a single
connection already fills it, a second one only halves the speed of the file the next step needs;
but a CDN often caps each connection, and then more connections do add speed. So the prefetcher
starts with one download in flight and adds another (up to `concurrency`) only while doing so
raises the measured throughput — a hill climb, as TCP's slow start does for its window.

A step asks for its file with `get` and gives its bytes back with `release` once done with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from pathlib import Path

from bootstrapper.fetch import Download, Downloader

#: What an item of unknown size counts against the byte budget.
UNKNOWN_SIZE_ESTIMATE = 64 * 1024 * 1024
#: How long one throughput measurement lasts.
PROBE_SECONDS = 0.5
#: An extra connection must raise throughput by this much to stay.
GAIN = 1.2
#: After a probe that did not pay, how long until the next one.
BACKOFF_SECONDS = 10.0


class Ramp:
    """How many downloads may be in flight: grows while each one added pays for itself."""

    def __init__(self, maximum: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.maximum = maximum
        self.allowed = 1
        self._clock = clock
        self._bytes = 0
        self._mark: tuple[float, int] | None = None
        self._before: float | None = None
        self._quiet_until = 0.0

    def add_bytes(self, n: int) -> None:
        self._bytes += n

    def tick(self, saturated: bool) -> bool:
        """Called as data arrives; True when `allowed` changed. Only a saturated window counts."""
        now = self._clock()
        if not saturated:
            self._mark = None
            return False
        if self._mark is None:
            self._mark = (now, self._bytes)
            return False
        started, at = self._mark
        if now - started < PROBE_SECONDS:
            return False
        rate = (self._bytes - at) / (now - started)
        self._mark = (now, self._bytes)
        if self._before is not None and rate < self._before * GAIN:
            # The last connection added did not pay: give it back and rest before trying again.
            self.allowed = max(1, self.allowed - 1)
            self._before = None
            self._quiet_until = now + BACKOFF_SECONDS
            return True
        if self.allowed < self.maximum and now >= self._quiet_until:
            self._before = rate
            self.allowed += 1
            return True
        self._before = None
        return False


class Prefetcher:
    def __init__(
        self,
        downloader: Downloader,
        concurrency: int,
        lookahead_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._downloader = downloader
        self.ramp = Ramp(concurrency, clock)
        self._budget = lookahead_bytes
        self._in_use = 0
        self._active = 0
        self._changed = asyncio.Condition()
        self._queue: list[Download] = []
        self._results: dict[str, asyncio.Future[Path]] = {}
        self._cost: dict[str, int] = {}
        self._seen: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._feeder: asyncio.Task[None] | None = None

    def add(self, downloads: list[Download]) -> None:
        """Queue downloads (in the order their steps run) and start feeding them."""
        loop = asyncio.get_running_loop()
        for d in downloads:
            if d.key in self._results:
                continue
            self._results[d.key] = loop.create_future()
            self._cost[d.key] = d.size if d.size is not None else UNKNOWN_SIZE_ESTIMATE
            self._queue.append(d)
        if self._feeder is None or self._feeder.done():
            self._feeder = asyncio.create_task(self._feed())

    def progress(self, key: str, done: int) -> None:
        """A download reports its byte count: the ramp measures throughput from these."""
        self.ramp.add_bytes(max(done - self._seen.get(key, 0), 0))
        self._seen[key] = done
        saturated = self._active >= self.ramp.allowed and bool(self._queue)
        if self.ramp.tick(saturated):
            asyncio.get_running_loop().create_task(self._notify())

    async def get(self, key: str) -> Path:
        """The verified file of step `key`; raises its FetchError."""
        return await asyncio.shield(self._results[key])

    async def release(self, key: str) -> None:
        """The step is done with its file: its bytes no longer count against the budget."""
        cost = self._cost.pop(key, 0)
        if cost:
            async with self._changed:
                self._in_use -= cost
                self._changed.notify_all()

    async def aclose(self) -> None:
        tasks = [t for t in (self._feeder, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for fut in self._results.values():
            if not fut.done():
                fut.cancel()
            elif not fut.cancelled():
                fut.exception()  # retrieved: an unused failure is not an "unhandled" one

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _fits(self, cost: int) -> bool:
        # The first download always starts, however large: nothing else would free the budget.
        fits = self._in_use == 0 or self._in_use + cost <= self._budget
        return fits and self._active < self.ramp.allowed

    async def _feed(self) -> None:
        while self._queue:
            download = self._queue[0]
            cost = self._cost[download.key]
            async with self._changed:
                await self._changed.wait_for(functools.partial(self._fits, cost))
                self._in_use += cost
                self._active += 1
            self._queue.pop(0)
            task = asyncio.create_task(self._one(download))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _one(self, download: Download) -> None:
        future = self._results[download.key]
        try:
            path = await self._downloader.fetch(download)
        except Exception as exc:  # FetchError, or a bug: either way the step waiting must hear of it
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(path)
        finally:
            async with self._changed:
                self._active -= 1
                self._changed.notify_all()
