"""Download ahead of the step being run: bounded concurrency, and a bound in bytes on what may sit
downloaded but not yet used, so a large manifest cannot flood the disk.

Downloads start in manifest order; a step asks for its file with `get` and gives its bytes back with
`release` once it is done with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from pathlib import Path

from bootstrapper.errors import FetchError
from bootstrapper.fetch import Download, Downloader

#: What an item of unknown size counts against the byte budget.
UNKNOWN_SIZE_ESTIMATE = 64 * 1024 * 1024


class Prefetcher:
    def __init__(self, downloader: Downloader, concurrency: int, lookahead_bytes: int) -> None:
        self._downloader = downloader
        self._slots = asyncio.Semaphore(concurrency)
        self._budget = lookahead_bytes
        self._in_use = 0
        self._changed = asyncio.Condition()
        self._queue: list[Download] = []
        self._results: dict[str, asyncio.Future[Path]] = {}
        self._cost: dict[str, int] = {}
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

    async def _feed(self) -> None:
        while self._queue:
            download = self._queue.pop(0)
            cost = self._cost[download.key]
            async with self._changed:
                # The first download always starts, however large: nothing else would free the budget.
                await self._changed.wait_for(functools.partial(self._fits, cost))
                self._in_use += cost
            await self._slots.acquire()
            task = asyncio.create_task(self._one(download))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _fits(self, cost: int) -> bool:
        return self._in_use == 0 or self._in_use + cost <= self._budget

    async def _one(self, download: Download) -> None:
        future = self._results[download.key]
        try:
            path = await self._downloader.fetch(download)
        except FetchError as exc:
            if not future.done():
                future.set_exception(exc)
        except Exception as exc:  # a bug in one download must not hang the step waiting for it
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(path)
        finally:
            self._slots.release()
