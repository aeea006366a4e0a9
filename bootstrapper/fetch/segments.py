"""Segmented downloads: one large file as several `Range` requests on parallel connections.

Many CDNs cap each connection's rate, so one stream cannot fill the link; a Mac's own link, on the
other hand, is one budget, where a second connection only shares it. So how many connections pay is
measured (`Link`), not fixed, and each connection that pays goes to the file needed soonest, by
cutting its largest remaining range in two: a file never waits for bytes of another one.

The segments write into one preallocated part file at their offsets; the sha256 runs over the bytes
in order as they become contiguous (`Assembly`), so a file is read back only where a later segment
finished before the one in front of it reached it. The sidecar records the ranges written, so a
resumed download asks only for the missing ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from bootstrapper.errors import (
    DiskFullError,
    FetchError,
    HashMismatchError,
    SizeLimitError,
    StagingError,
    TransferError,
)
from bootstrapper.fetch import staging
from bootstrapper.fetch.events import Progress
from bootstrapper.fetch.http import RateGuard, check_status, content_length, send_following, translate
from bootstrapper.fetch.model import Download, KiB, MiB
from bootstrapper.fetch.redact import Redactor, redact_url
from bootstrapper.fetch.staging import BATCH, Part

if TYPE_CHECKING:
    from bootstrapper.fetch.downloader import Downloader

log = logging.getLogger(__name__)

#: Items up to this size are small: fetched on a connection of their own as soon as they are in the
#: look-ahead window, never queued behind a large file. 1 MiB takes 42 ms of a 24 MiB/s link, so
#: running it beside a large file delays that file by at most that much, against the seconds a
#: small script would otherwise wait behind it.
SMALL_BYTES = 1 * MiB
#: A file of at least this size may be split. Below it a second request costs more than it saves:
#: at a CDN's 12 MiB/s per connection, half of 16 MiB is 0.7 s, against a request's ~0.1 s to ramp up.
SEGMENT_MIN = 16 * MiB
#: No segment is cut shorter than this. Small, so that near the end of a file the connections whose
#: segments are done take over half of what the slowest one has left (as `aria2c -k1M` does): a
#: 1 MiB piece is 80 ms at 12 MiB/s, still more than a request costs.
SPLIT_MIN = 1 * MiB
#: Segment boundaries fall on this, so writes stay page-aligned.
ALIGN = 64 * KiB
#: How long one throughput measurement lasts at least; longer on a link whose requests take long to
#: answer (`LATENCY_WINDOWS` times the time to the first byte), so that a new connection's own
#: start-up is not taken for a lack of gain.
PROBE_SECONDS = 0.05
LATENCY_WINDOWS = 2
#: More connections must raise throughput by this much to stay.
GAIN = 1.2
#: After a probe that did not pay, how long until the next one.
BACKOFF_SECONDS = 10.0
#: Seconds between two sidecar updates while segments stream (what a crash can lose).
SIDECAR_EVERY = 1.0
#: Seconds between two Progress events of one item.
PROGRESS_EVERY = 0.25

Range = tuple[int, int]


class Link:
    """How many connections pay: a hill climb on the throughput of all large transfers together.

    It starts with one connection and doubles (up to `maximum`, the `concurrency` setting) while each
    step raises the measured throughput by `GAIN`; a step that did not pay is given back, and the
    next probe waits `BACKOFF_SECONDS`. What it learnt stays for the next file.
    """

    def __init__(self, maximum: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.maximum = maximum
        self.allowed = 1
        #: Connections of counted (not small) transfers now open.
        self.in_use = 0
        self._clock = clock
        self._bytes = 0
        self._mark: tuple[float, int] | None = None
        self._before: tuple[int, float] | None = None
        self._quiet_until = 0.0
        self._latency = 0.0

    @property
    def window(self) -> float:
        return max(PROBE_SECONDS, LATENCY_WINDOWS * self._latency)

    def note_latency(self, seconds: float) -> None:
        """A request's time to its answer: sets how long a measurement must last."""
        self._latency = seconds if not self._latency else 0.7 * self._latency + 0.3 * seconds

    def add_bytes(self, n: int) -> None:
        self._bytes += n

    def tick(self) -> bool:
        """Called as data arrives; True when `allowed` changed. Only a window with every allowed
        connection busy says anything about whether more would help."""
        now = self._clock()
        if self.in_use < self.allowed:
            self._mark = None
            return False
        if self._mark is None:
            self._mark = (now, self._bytes)
            return False
        started, at = self._mark
        if now - started < self.window:
            return False
        rate = (self._bytes - at) / (now - started)
        self._mark = (now, self._bytes)
        if self._before is not None:
            fewer, before = self._before
            self._before = None
            if rate < before * GAIN:
                self.allowed = fewer
                self._quiet_until = now + BACKOFF_SECONDS
                return True
        if self.allowed < self.maximum and now >= self._quiet_until:
            self._before = (self.allowed, rate)
            self.allowed = min(self.maximum, self.allowed * 2)
            return True
        return False


def merge(ranges: list[Range]) -> list[Range]:
    out: list[Range] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def gaps(done: list[Range], size: int) -> list[Range]:
    """The ranges of [0, size) not in `done`."""
    out: list[Range] = []
    at = 0
    for start, end in merge(done):
        if start > at:
            out.append((at, min(start, size)))
        at = max(at, end)
    if at < size:
        out.append((at, size))
    return out


class Assembly:
    """The part file, written at any offset by several segments, hashed in order as it fills.

    A write at the hashed frontier is hashed from memory; one further on waits as a range, and is
    read back once the frontier reaches it. Runs on the I/O threads; one lock keeps it ordered.
    """

    def __init__(self, fd: int, write: staging.Writer, done: list[Range]) -> None:
        self._fd = fd
        self._write = write
        self._lock = threading.Lock()
        self._hasher = hashlib.sha256()
        self._hashed = 0
        self._ahead = merge(done)
        #: Bytes read back to hash them (the cost of finishing out of order).
        self.reread = 0

    def put(self, pos: int, data: bytes) -> None:
        with self._lock:
            os.lseek(self._fd, pos, os.SEEK_SET)
            view = memoryview(data)
            while view:
                view = view[self._write(self._fd, view) :]
            if pos == self._hashed:
                self._hasher.update(data)
                self._hashed += len(data)
            else:
                self._ahead = merge([*self._ahead, (pos, pos + len(data))])
            self._advance()

    def catch_up(self) -> None:
        with self._lock:
            self._advance()

    def _advance(self) -> None:
        while self._ahead and self._ahead[0][0] <= self._hashed:
            _, end = self._ahead.pop(0)
            while self._hashed < end:
                block = os.pread(self._fd, min(BATCH, end - self._hashed), self._hashed)
                if not block:
                    raise OSError(errno.EIO, "the part file is shorter than what was written to it")
                self._hasher.update(block)
                self._hashed += len(block)
                self.reread += len(block)

    def done(self) -> list[Range]:
        """The ranges on disk: what a resume need not fetch again."""
        with self._lock:
            return merge([(0, self._hashed), *self._ahead])

    def hashed(self) -> int:
        return self._hashed

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()


def done_ranges(part: Part, data: dict[str, str], size: int) -> list[Range]:
    """The ranges a part left by an earlier attempt holds, from its sidecar (empty: start over)."""
    if "segments" in data:
        if data.get("size") != str(size):
            return []
        ranges: list[Range] = []
        for word in data["segments"].split(","):
            start, _, end = word.partition("-")
            if not (start.isdigit() and end.isdigit()) or not int(start) < int(end) <= size:
                return []
            ranges.append((int(start), int(end)))
        return merge(ranges)
    held = part.size()  # a part written as one stream: its bytes are the prefix
    return [(0, min(held, size))] if held else []


@dataclass
class _Segment:
    #: Next byte to receive; `end` is exclusive and drops when the segment is cut in two.
    pos: int
    end: int


class _Restart(Exception):
    """The server will not serve this range of this version of the file: one stream from zero."""


class _SegmentSink(staging.Batches):
    """One segment's bytes, written at their offset on the I/O thread, one batch in flight."""

    def __init__(self, assembly: Assembly, pos: int) -> None:
        super().__init__()
        self._assembly = assembly
        self._pos = pos

    def _submit(self, data: bytes) -> Future[None]:
        pending = staging.submit(self._assembly.put, self._pos, data)
        self._pos += len(data)
        return pending

    async def flush(self) -> None:
        await self._flush()

    def close(self) -> None:
        """Wait for the write in flight (the descriptor must outlive it); keep what arrived."""
        if self._settle() and self._chunks:
            with contextlib.suppress(OSError):
                self._assembly.put(self._pos, b"".join(self._chunks))
        self._chunks.clear()


@dataclass(eq=False)
class Attempt:
    """What every try at an item holds: its downloader, client, part file and what to scrub."""

    owner: Downloader
    client: httpx.AsyncClient
    item: Download
    part: Part
    redact: Redactor
    #: The URL as messages show it: a presigned URL's signature is masked.
    shown: str = field(init=False)

    def __post_init__(self) -> None:
        self.shown = redact_url(self.item.url)

    def sidecar(self, response: httpx.Response) -> dict[str, str]:
        """What makes the part file resumable: the response's validator, kept with the item's hash.

        The URL is kept as shown, never as fetched: a presigned URL's signature must not rest on disk.
        """
        data = {"url": redact_url(self.item.url), "sha256": self.item.sha256}
        etag = response.headers.get("etag", "")
        if etag.startswith('"'):  # a strong validator only: If-Range cannot use a weak one
            data["etag"] = etag
        if last_modified := response.headers.get("last-modified"):
            data["last_modified"] = last_modified
        return data

    def write_failed(self, exc: OSError, after: str = "") -> FetchError:
        """The part file could not be written: it is removed, and the error says whether the disk is
        full (`after` tells how far the download got)."""
        self.part.discard()
        if staging.is_disk_full(exc):
            return DiskFullError(
                f"{self.shown}: the disk is full in {self.owner._staging}{after}; the partial file was "
                "removed; free some space and run again"
            )
        return StagingError(f"{self.shown}: cannot write {self.part.path}: {exc.strerror or exc}")


@dataclass(eq=False)
class SegmentedAttempt(Attempt):
    """One try at a large item whose server takes ranges: segments on as many connections as pay."""

    order: int

    def __post_init__(self) -> None:
        super().__post_init__()
        assert self.item.size is not None
        self.size = self.item.size
        self.validator: str | None = None
        self.splittable = False
        self.queued: list[Range] = []
        self.segments: list[_Segment] = []
        self.active = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._ended = asyncio.Event()
        self._closing = False
        self._assembly: Assembly | None = None
        self._sidecar: dict[str, str] = {}
        self._last_progress = 0.0
        self._last_sidecar = 0.0
        #: Called once the first answer says whether the file can be split.
        self.opened: Callable[[], None] = lambda: None

    async def run(self) -> int:
        for _ in range(2):
            try:
                return await self._once()
            except _Restart:
                self.part.discard()
        raise TransferError(f"{self.shown}: the server keeps refusing to resume; retrying from zero")

    async def _once(self) -> int:
        # nothing carries over from a try the server refused: splitting waits for its first answer
        self.splittable = False
        self.queued, self.segments, self.active = [], [], 0
        self._closing = False
        data = self.part.read_sidecar()
        validator = data.get("etag") or data.get("last_modified")
        done: list[Range] = []
        if validator and data.get("sha256") == self.item.sha256:
            done = done_ranges(self.part, data, self.size)
        if not done:
            self.part.discard()
        else:
            self._sidecar = {k: v for k, v in data.items() if k in ("url", "sha256", "etag", "last_modified")}
        fd = self.part.open_rw(self.size)
        try:
            self._assembly = assembly = Assembly(fd, self.owner._write, done)
            await asyncio.to_thread(assembly.catch_up)
            missing = gaps(done, self.size)
            if missing:
                self.validator = validator if done else None
                self.queued = missing
                self.owner._register(self)
                try:
                    await self._transfer()
                finally:
                    self.owner._unregister(self)
                    self._save()
            return await self._finish(fd, assembly)
        except SizeLimitError:
            self.part.discard()
            raise
        except OSError as exc:
            raise self.write_failed(exc) from exc
        finally:
            os.close(fd)

    async def _transfer(self) -> None:
        """Run segments until every range is in; the first failure stops the others."""
        self.owner._dispatch()
        try:
            while True:
                failed = [e for t in self._tasks if (e := _failure(t)) is not None]
                if failed:
                    raise _worst(failed)
                self._tasks = {t for t in self._tasks if not t.done()}
                if not self._tasks and not self.queued:
                    return
                await self._ended.wait()
                self._ended.clear()
                self.owner._dispatch()
        finally:
            self._closing = True  # no new segment while the others wind down
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(BaseException):
                    await task
            self._tasks.clear()

    # --- connections, given by the downloader in order of need ---------------------------------

    def start_queued(self) -> bool:
        """Open a connection for the next range nobody fetches yet; False when there is none."""
        if self._closing or not self.queued or (self.active and not self.splittable):
            return False
        start, end = self.queued.pop(0)
        self._start(_Segment(start, end))
        return True

    def split(self) -> bool:
        """Give a new connection half of the largest remaining range; False when none is worth it."""
        if self._closing or not self.splittable or not self.segments:
            return False
        seg = max(self.segments, key=lambda s: s.end - s.pos)
        left = seg.end - seg.pos
        if left < 2 * SPLIT_MIN:
            return False
        mid = -(-(seg.pos + left // 2) // ALIGN) * ALIGN
        if not seg.pos < mid < seg.end:
            return False
        new = _Segment(mid, seg.end)
        seg.end = mid
        log.debug("%s: split at %d, %d connections", self.item.key, mid, self.active + 1)
        self._start(new)
        return True

    def _start(self, seg: _Segment) -> None:
        self.segments.append(seg)
        self.active += 1
        self.owner._link.in_use += 1
        task = asyncio.get_running_loop().create_task(self._segment(seg))
        self._tasks.add(task)
        task.add_done_callback(lambda _t: self._ended.set())

    # --- one segment -----------------------------------------------------------------------------

    async def _segment(self, seg: _Segment) -> None:
        assert self._assembly is not None
        sink = _SegmentSink(self._assembly, seg.pos)
        holding = True
        try:
            async with RateGuard(self.owner._options, self.item.url) as guard:
                response = await self._open(seg)
                try:
                    await self._stream(seg, response, sink, guard)
                finally:
                    await response.aclose()
            # Every byte is in: the connection goes to the next piece (or file) now, while the last
            # writes land and the hash catches up with what other segments wrote ahead of this one.
            holding = False
            self._release(seg)
            self.owner._dispatch()
            await sink.flush()
            await sink.flush()
        finally:
            sink.close()
            if holding:
                self._release(seg)

    def _release(self, seg: _Segment) -> None:
        self.segments.remove(seg)
        self.active -= 1
        self.owner._link.in_use -= 1
        if seg.pos < seg.end:  # not all in: a later attempt, or this one, fetches the rest
            self.queued = merge([*self.queued, (seg.pos, seg.end)])

    async def _open(self, seg: _Segment) -> httpx.Response:
        """The request for one segment; checks that the answer is the range asked, of our file."""
        whole = seg.pos == 0 and seg.end == self.size and self.validator is None
        # what is asked, kept: a split may lower `seg.end` while the answer is on its way
        span = (seg.pos, seg.end)
        extra = {} if whole else {"Range": f"bytes={seg.pos}-{seg.end - 1}"}
        if self.validator and not whole:
            extra["If-Range"] = self.validator
        asked_at = time.monotonic()
        response = await send_following(
            self.client, self.item.url, self.owner._options, self.redact,
            item_headers=self.item.headers, extra=extra,
        )  # fmt: skip
        self.owner._link.note_latency(time.monotonic() - asked_at)
        try:
            self._check(span, response, whole=whole)
        except BaseException:
            await response.aclose()
            raise
        self.opened()
        return response

    def _check(self, span: Range, response: httpx.Response, *, whole: bool) -> None:
        status = response.status_code
        if whole:
            if status == 206:
                raise TransferError(f"{self.shown}: partial content to a full request; retrying")
            check_status(response)
            self._adopt(response)
            return
        if status == 416:
            log.info("%s: the server refused bytes %d-%d; starting over", self.item.key, span[0], span[1] - 1)
            self.owner._no_ranges.add(self.item.url)
            raise _Restart
        check_status(response)
        if status == 200:
            # the file changed (If-Range) or ranges are no longer honoured: one stream from zero
            log.info("%s: a range was answered with the whole file; starting over", self.item.key)
            self.owner._no_ranges.add(self.item.url)
            raise _Restart
        etag = response.headers.get("etag")
        if etag and self.validator and self.validator.startswith('"') and etag != self.validator:
            log.info("%s: the file changed between segments (ETag); starting over", self.item.key)
            raise _Restart
        if _content_range(response) != (span[0], span[1] - 1, self.size):
            raise TransferError(
                f"{self.shown}: asked for bytes {span[0]}-{span[1] - 1} of {self.size} but the "
                f"server sent {response.headers.get('content-range') or 'no Content-Range'}; retrying"
            )
        if self.validator is None:
            self._adopt(response)
        if not self.splittable and self.item.url not in self.owner._no_ranges:
            self.splittable = True
            asyncio.get_running_loop().call_soon(self.owner._dispatch)

    def _adopt(self, response: httpx.Response) -> None:
        """The first answer: its validator makes the part resumable, Accept-Ranges makes it splittable."""
        self._sidecar = data = self.sidecar(response)
        self.validator = data.get("etag") or data.get("last_modified")
        declared = content_length(response)
        if response.status_code == 200 and declared is not None and declared > self.size:
            raise SizeLimitError(
                f"{self.shown}: the server announces {declared} bytes, more than the item's size "
                f"{self.size}; the body was refused; check the item's url and size"
            )
        self.splittable = (
            self.validator is not None
            and response.headers.get("accept-ranges", "").strip().lower() == "bytes"
            and self.item.url not in self.owner._no_ranges
        )
        self._save()
        if self.splittable:
            asyncio.get_running_loop().call_soon(self.owner._dispatch)

    async def _stream(
        self, seg: _Segment, response: httpx.Response, sink: _SegmentSink, guard: RateGuard
    ) -> None:
        owner, link = self.owner, self.owner._link
        url = str(response.request.url)
        try:
            async for chunk in response.aiter_raw():
                take = min(len(chunk), seg.end - seg.pos)
                if take < len(chunk) and seg.end == self.size:
                    raise SizeLimitError(
                        f"{self.shown}: more than {self.size} bytes (the item's size); the body was "
                        "cut and discarded; check the item's url and size"
                    )
                if take:
                    seg.pos += take
                    await sink.feed(chunk if take == len(chunk) else chunk[:take])
                    guard.add(take)
                    link.add_bytes(take)
                    if link.tick():
                        owner._dispatch()
                    self._report()
                if seg.pos >= seg.end:
                    return
        except (httpx.HTTPError, ssl.SSLError, ConnectionError) as exc:
            raise translate(exc, url, self.redact) from exc
        raise TransferError(
            f"{self.shown}: a segment ended at byte {seg.pos}, short of {seg.end}; will resume"
        )

    def _report(self) -> None:
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_EVERY:
            self._last_progress = now
            self.owner._emit(Progress(self.item.key, self._received(), self.size))
        if now - self._last_sidecar >= SIDECAR_EVERY:
            self._last_sidecar = now
            self._save()

    def _received(self) -> int:
        assert self._assembly is not None
        done = self._assembly.done()
        return sum(end - start for start, end in done)

    def _save(self) -> None:
        """Record the validator and the ranges on disk; never more than was written."""
        if self._assembly is None or not self._sidecar:
            return
        ranges = self._assembly.done()
        data = {
            **self._sidecar,
            "size": str(self.size),
            "segments": ",".join(f"{start}-{end}" for start, end in ranges),
        }
        with contextlib.suppress(OSError):
            self.part.write_sidecar(data)

    async def _finish(self, fd: int, assembly: Assembly) -> int:
        await asyncio.to_thread(assembly.catch_up)
        if assembly.hashed() != self.size:
            raise TransferError(
                f"{self.shown}: only {assembly.hashed()} of {self.size} bytes arrived; will resume"
            )
        await asyncio.wrap_future(staging.submit(_sync, fd, self.item.mode))
        digest = assembly.hexdigest()
        if digest != self.item.sha256:
            self.part.discard()
            raise mismatch(self.item, digest)
        if assembly.reread:
            log.debug("%s: %d bytes read back to hash them in order", self.item.key, assembly.reread)
        self.owner._emit(Progress(self.item.key, self.size, self.size))
        return self.size


def _sync(fd: int, mode: int) -> None:
    os.fchmod(fd, mode)
    os.fsync(fd)


def _content_range(response: httpx.Response) -> tuple[int, int, int] | None:
    unit, _, rest = response.headers.get("content-range", "").strip().partition(" ")
    span, _, total = rest.partition("/")
    first, _, last = span.partition("-")
    if unit.lower() != "bytes" or not (first.isdigit() and last.isdigit() and total.isdigit()):
        return None
    return int(first), int(last), int(total)


def _failure(task: asyncio.Task[None]) -> BaseException | None:
    if not task.done() or task.cancelled():
        return None
    return task.exception()


def _worst(found: list[BaseException]) -> BaseException:
    """Of several segments' failures, the one that decides: a restart, then one a retry cannot fix."""
    for e in found:
        if isinstance(e, _Restart):
            return e
    for e in found:
        if isinstance(e, FetchError) and not e.retryable:
            return e
    return found[0]


def mismatch(item: Download, actual: str) -> HashMismatchError:
    return HashMismatchError(
        f"{redact_url(item.url)}: sha256 mismatch: expected {item.sha256}, got {actual}; "
        "the file was discarded (a captive portal, a changed file, or a wrong hash in the manifest)",
        item.sha256,
        actual,
    )
