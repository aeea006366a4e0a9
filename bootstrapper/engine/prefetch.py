"""Download ahead of the step being run, in manifest order, without flooding the disk or the link.

Two bounds: the bytes that may sit downloaded but not yet used (`lookahead_bytes`), and the
connections. The second is the downloader's: it measures how many connections pay (a Mac's link is
one shared budget, where a second connection only halves the speed of the file the next step needs;
a CDN often caps each connection, and then more do add speed) and gives them to the file needed
soonest, as segments of it. So the next large file starts only when a connection that pays is left
over. Small items (scripts, files up to `SMALL_BYTES`) are no such contest: each starts on a
connection of its own as soon as it is in the look-ahead window, never queued behind a large file.

A step asks for its file with `get` and gives its bytes back with `release` once done with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bootstrapper.fetch import Download, Downloader
from bootstrapper.fetch.segments import SMALL_BYTES

#: What an item of unknown size counts against the byte budget.
UNKNOWN_SIZE_ESTIMATE = 64 * 1024 * 1024


@dataclass(eq=False)
class Prefetcher:
    """Fetches queued items ahead of their steps within the byte budget (see the module docstring)."""

    downloader: Downloader
    lookahead_bytes: int
    _in_use: int = field(default=0, init=False)
    _large: int = field(default=0, init=False)
    _small_active: int = field(default=0, init=False)
    #: Large downloads started here that the downloader has not heard of yet.
    _launching: int = field(default=0, init=False)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition, init=False)
    _queue: list[Download] = field(default_factory=list, init=False)
    _small: set[str] = field(default_factory=set, init=False)
    _results: dict[str, asyncio.Future[Path]] = field(default_factory=dict, init=False)
    _cost: dict[str, int] = field(default_factory=dict, init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _feeder: asyncio.Task[None] | None = field(default=None, init=False)
    _waiting: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.downloader.watch_spare(self._spare)

    def add(self, downloads: list[Download], *, small: Iterable[str] = ()) -> None:
        """Queue downloads (in the order their steps run) and start feeding them.

        `small` names items known to be small although their size is not given (scripts).
        """
        loop = asyncio.get_running_loop()
        self._small.update(small)
        for d in downloads:
            if d.key in self._results:
                continue
            self._results[d.key] = loop.create_future()
            self._cost[d.key] = d.size if d.size is not None else UNKNOWN_SIZE_ESTIMATE
            if d.size is not None and d.size <= SMALL_BYTES:
                self._small.add(d.key)
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

    def _spare(self) -> None:
        """A connection may be spare: the feeder, if waiting, looks again."""
        if self._waiting:
            self._waiting = False
            self._wake()

    def _wake(self) -> None:
        """Have the feeder look again, from code that cannot await (a callback)."""
        task = asyncio.get_running_loop().create_task(self._notify())
        self._tasks.add(task)  # the loop holds tasks weakly: keep it until it ran
        task.add_done_callback(self._tasks.discard)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _pick(self) -> int | None:
        """The queue position of the next download to start now, if any.

        The window is the run of queued items whose bytes fit the budget, counted in order; in it a
        small item starts (up to `concurrency` of them at once), a large one when no other large one
        runs or a connection is spare.
        """
        projected = self._in_use
        dl = self.downloader
        for n, d in enumerate(self._queue):
            cost = self._cost[d.key]
            # the first download always fits, however large: nothing else would free the budget
            if projected and projected + cost > self.lookahead_bytes:
                break
            if d.key in self._small:
                # a cap all the same: a thousand scripts must not open a thousand connections at once
                if self._small_active < dl.link.maximum:
                    return n
            elif not self._large or (not self._launching and dl.spare() and self._large < dl.link.allowed):
                return n
            projected += cost
        self._waiting = True
        return None

    async def _feed(self) -> None:
        while self._queue:
            async with self._changed:
                await self._changed.wait_for(lambda: self._pick() is not None)
                n = self._pick()
                assert n is not None
                download = self._queue.pop(n)
                small = download.key in self._small
                self._in_use += self._cost[download.key]
                self._large += not small
                self._launching += not small
                self._small_active += small
            task = asyncio.create_task(self._one(download, small))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _one(self, download: Download, small: bool) -> None:
        future = self._results[download.key]
        holds_link = not small

        def transferred() -> None:
            # its bytes are in: the next large item may have the link while this one is placed
            nonlocal holds_link
            if holds_link:
                holds_link = False
                self._large -= 1
                self._wake()

        try:
            if not small:
                # `fetch` registers the download before it first waits, in this same step of the
                # loop; the feeder, woken after that, then sees whether a connection is left
                self._launching -= 1
                self._spare()
            path = await self.downloader.fetch(download, small=small, transferred=transferred)
        except Exception as exc:  # FetchError, or a bug: either way the step waiting must hear of it
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(path)
        finally:
            async with self._changed:
                self._large -= holds_link
                self._small_active -= small
                self._changed.notify_all()
