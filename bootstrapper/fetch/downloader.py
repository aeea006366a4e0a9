"""The downloader: stream, hash, cap, resume, retry and place many items, a bounded number at once.

One `httpx.AsyncClient` per downloader. Each attempt is one `_Attempt`; `fetch.retry` repeats attempts
for failures a later attempt can get past (transfer errors, 408/425/429/5xx, and a hash mismatch,
which restarts from zero), waiting with capped exponential backoff and honouring Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import random
import stat
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

import httpx

from bootstrapper.errors import (
    ClientStatusError,
    DiskFullError,
    FetchError,
    HashMismatchError,
    IntegrityError,
    SizeLimitError,
    StagingError,
    TransferError,
    UnsafePathError,
    UnsafeURLError,
)
from bootstrapper.fetch import staging
from bootstrapper.fetch.events import Failed as FailedEvent
from bootstrapper.fetch.events import FetchEvent, Finished, Progress, Retrying, Started
from bootstrapper.fetch.http import RateGuard, check_status, make_client, read_capped, send_following
from bootstrapper.fetch.model import Download, FetchOptions
from bootstrapper.fetch.redact import Redactor, redact_url
from bootstrapper.fetch.retry import RetryPolicy, with_retries
from bootstrapper.fetch.segments import SEGMENT_MIN, SMALL_BYTES, Attempt, Link, SegmentedAttempt, mismatch
from bootstrapper.fetch.staging import Part, Sink, Writer
from bootstrapper.hashing import feed_file
from bootstrapper.safefile import open_verified, place_staged

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
#: Seconds between two Progress events of one item.
PROGRESS_EVERY = 0.25


def _ignore(_event: FetchEvent) -> None:
    return None


def _nothing() -> None:
    return None


class Downloader:
    """Async context manager owning one HTTP client; `fetch` one item or `fetch_all` of them."""

    def __init__(
        self,
        options: FetchOptions,
        staging_dir: Path,
        on_event: Callable[[FetchEvent], None] = _ignore,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
        write: Writer = os.write,
        rng: random.Random | None = None,
    ) -> None:
        """`sleep` and `write` are seams for tests: count retry waits, and fail writes like a full disk."""
        self._options = options
        self._staging = staging_dir
        self._emit = on_event
        self._transport = transport
        self._sleep = sleep
        self._write = write
        self._rng = rng or random.Random()  # noqa: S311 -- jitter, not a secret
        self._client: httpx.AsyncClient | None = None
        self._locks: dict[Path, asyncio.Lock] = {}
        #: How many connections pay, measured over every large transfer of this downloader.
        self._link = Link(options.concurrency)
        #: Segmented transfers in progress, the one needed soonest (fetched first) first.
        self._transfers: list[tuple[int, SegmentedAttempt]] = []
        self._order = 0
        #: URLs whose server refused a range once: fetched as one stream from then on.
        self._no_ranges: set[str] = set()
        self._spare_watchers: list[Callable[[], None]] = []
        #: Large fetches begun that have no answer yet: they may still want the spare connections.
        self._opening = 0

    async def __aenter__(self) -> Downloader:
        staging.prepare_staging(self._staging)
        self._client = make_client(self._options, self._transport)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def fetch_all(self, items: Sequence[Download]) -> dict[str, Path | FetchError]:
        """Fetch every item, `concurrency` at once; each key maps to its placed path or its error."""
        keys = [item.key for item in items]
        if len(set(keys)) != len(keys):
            raise ValueError("fetch_all: item keys must be unique")
        gate = asyncio.Semaphore(self._options.concurrency)
        results: dict[str, Path | FetchError] = {}

        async def one(item: Download) -> None:
            async with gate:
                try:
                    results[item.key] = await self.fetch(item)
                except FetchError as exc:
                    results[item.key] = exc

        async with asyncio.TaskGroup() as group:
            for item in items:
                group.create_task(one(item))
        return {key: results[key] for key in keys}

    def spare(self) -> bool:
        """A connection that pays is free and no transfer under way can use it: start another item.

        Not while a large fetch awaits its first answer: the connections are its own once it can
        be split, and the next item must not take them in the meantime.
        """
        return self._link.in_use < self._link.allowed and not self._opening

    @property
    def link(self) -> Link:
        """The measured connection count (tests and benchmarks read it, or preset it)."""
        return self._link

    def watch_spare(self, callback: Callable[[], None]) -> None:
        """`callback()` whenever a connection is left spare (a transfer ended, or more connections pay)."""
        self._spare_watchers.append(callback)

    async def fetch(
        self, item: Download, *, small: bool | None = None, transferred: Callable[[], None] = _nothing
    ) -> Path:
        """Download, verify and place one item (retrying inside); its final path.

        A small item (by default: a known size up to `SMALL_BYTES`) runs on a connection of its own,
        outside the count of connections that large transfers share and measure. `transferred()` is
        called once the last byte is in and verified, before the file is placed: the link is free
        for the next item then (placing syncs and renames the file: disk work, not link work).
        """
        if self._client is None:
            raise RuntimeError("Downloader.fetch outside `async with Downloader(...)`")
        if small is None:
            small = item.size is not None and item.size <= SMALL_BYTES
        part = Part.for_item(self._staging, item.url, item.sha256)
        lock = self._locks.setdefault(part.path, asyncio.Lock())
        redact = Redactor([*self._options.secrets(), *item.headers.values()])
        self._order += 1
        order = self._order
        pending = [not small]
        self._opening += pending[0]

        def opened() -> None:
            if pending[0]:
                pending[0] = False
                self._opening -= 1
                self._dispatch()

        try:
            async with lock:
                if urlsplit(item.url).scheme == "file":
                    if not self._options.local_files:
                        raise UnsafeURLError(f"{item.url}: file:// items belong to a manifest on this disk")
                    return await self._copy_local(item, part)
                return await self._fetch(
                    self._client, item, part, redact, order, opened, transferred, counted=not small
                )
        except FetchError as exc:
            log.warning("%s: %s", item.key, exc)
            self._emit(FailedEvent(item.key, exc))
            raise
        finally:
            opened()

    async def _fetch(
        self,
        client: httpx.AsyncClient,
        item: Download,
        part: Part,
        redact: Redactor,
        order: int,
        opened: Callable[[], None],
        transferred: Callable[[], None],
        *,
        counted: bool,
    ) -> Path:
        shown = redact_url(item.url)
        size = await self._in_place(item)
        if size is not None:
            self._emit(Finished(item.key, item.dest, size, cached=True))
            return item.dest
        self._check_space(item, part, shown)
        self._emit(Started(item.key, item.size))

        def retrying(attempt: int, error: FetchError, wait: float) -> None:
            log.info("%s: attempt %d failed (%s); next in %.1fs", item.key, attempt, error, wait)
            self._emit(Retrying(item.key, attempt, str(error), wait))

        def attempt() -> Awaitable[int]:
            one: SegmentedAttempt | _Attempt
            if counted and item.size is not None and item.size >= SEGMENT_MIN:
                one = SegmentedAttempt(self, client, item, part, redact, order)
            else:
                one = _Attempt(self, client, item, part, redact, counted=counted)
            one.opened = opened
            return one.run()

        size = await with_retries(
            attempt,
            RetryPolicy.of(self._options, item.retrywait, attempts=1 + item.retries),
            sleep=self._sleep,
            rng=self._rng,
            on_retry=retrying,
        )
        transferred()
        return await self._place(item, part, shown, size)

    async def _place(self, item: Download, part: Part, shown: str, size: int) -> Path:
        """Move the verified part to its destination, root's (in an unprivileged sandbox, ours).

        Not hashed a second time: its digest was taken from the bytes as they were written, and
        only root can reach it since (`place_staged` checks the 0700 folder and the file on their
        descriptors). Hashing again would put a whole re-read between every download and its step.
        """
        owner = (0, 0) if os.geteuid() == 0 else None
        try:
            await asyncio.to_thread(place_staged, part.path, item.dest, owner=owner, mode=item.mode)
        except UnsafePathError as exc:
            raise StagingError(f"{shown}: {exc}") from exc
        part.discard()
        log.info("%s: placed %s (%d bytes)", item.key, item.dest, size)
        self._emit(Finished(item.key, item.dest, size))
        return item.dest

    async def _copy_local(self, item: Download, part: Part) -> Path:
        """A file:// item of a local manifest (a rehearsal, or a bundle on a disk): copied into staging,
        verified by size and sha256 like a download, then placed the same way."""
        source = Path(unquote(urlsplit(item.url).path))
        cached = await self._in_place(item)
        if cached is not None:
            self._emit(Finished(item.key, item.dest, cached, cached=True))
            return item.dest
        self._emit(Started(item.key, item.size))
        try:
            size, digest = await asyncio.to_thread(_copy_hashed, source, part.path, item.size)
        except FileNotFoundError:
            raise ClientStatusError(f"{item.url}: no such file; check the item's url", 404) from None
        except OSError as exc:
            raise FetchError(f"{item.url}: cannot read it ({exc.strerror or exc})") from exc
        if item.size is not None and size != item.size:
            part.discard()
            raise IntegrityError(f"{item.url}: {size} bytes, the manifest says {item.size}")
        if digest != item.sha256:
            part.discard()
            raise HashMismatchError(
                f"{item.url}: sha256 mismatch: expected {item.sha256}, got {digest}", item.sha256, digest
            )
        return await self._place(item, part, item.url, size)

    async def _in_place(self, item: Download) -> int | None:
        """The size of a file already at the destination that root may keep; None: download again.

        Only a regular, unshared file of root's (or ours) in safe folders whose bytes, read through
        one descriptor, hash right is kept: a file another user planted there, whatever its bytes,
        is replaced. Its size and mode are read and fixed on that descriptor, never by path.
        """
        try:
            fd = await asyncio.to_thread(open_verified, item.dest, item.sha256)
        except (UnsafePathError, OSError):
            return None
        try:
            st = os.fstat(fd)
            if item.size is not None and st.st_size != item.size:
                return None
            if stat.S_IMODE(st.st_mode) != item.mode:
                os.fchmod(fd, item.mode)
        except OSError:
            return None
        finally:
            os.close(fd)
        return st.st_size

    # --- connections for segmented transfers ------------------------------------------------------

    def _register(self, transfer: SegmentedAttempt) -> None:
        self._transfers.append((transfer.order, transfer))
        self._transfers.sort(key=lambda pair: pair[0])

    def _unregister(self, transfer: SegmentedAttempt) -> None:
        self._transfers = [(o, t) for o, t in self._transfers if t is not transfer]
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand the connections that pay to the transfers in order of need, then tell the watchers."""
        link = self._link
        for _order, t in self._transfers:
            if t.active == 0:
                t.start_queued()  # a transfer always has its one connection
            while link.in_use < link.allowed and (t.start_queued() or t.split()):
                pass
        if link.in_use < link.allowed:
            for callback in self._spare_watchers:
                callback()

    def _check_space(self, item: Download, part: Part, shown: str) -> None:
        if item.size is None:
            return
        need = item.size - part.held()
        free = staging.free_space(self._staging)
        if need > free:
            raise DiskFullError(
                f"{shown}: needs {_human(need)} but only {_human(free)} is free in {self._staging}; "
                "free some space and run again"
            )


@dataclass(eq=False)
class _Attempt(Attempt):
    """One try at an item: resume the part file if it can be, stream, verify."""

    counted: bool = field(kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.opened: Callable[[], None] = lambda: None
        self.limit = self.item.size if self.item.size is not None else self.owner._options.max_bytes

    async def run(self) -> int:
        offset, validator = self._resumable()
        hasher = hashlib.sha256()
        if offset:
            hasher = await asyncio.to_thread(feed_file, self.part.path, hasher, offset)
        if offset and offset == self.item.size:
            return await self._verify_complete(hasher, offset)
        for _ in range(2):
            link = self.owner._link
            if self.counted:
                link.in_use += 1
            try:
                async with RateGuard(self.owner._options, self.item.url) as guard:
                    return await self._request(offset, validator, hasher, guard)
            except _StartOver:
                self.part.discard()
                offset, validator, hasher = 0, None, hashlib.sha256()
            finally:
                if self.counted:
                    link.in_use -= 1
                    self.owner._dispatch()
        raise TransferError(f"{self.shown}: the server keeps refusing to resume; retrying from zero")

    def _resumable(self) -> tuple[int, str | None]:
        """Offset and If-Range validator of a part left by an earlier attempt, or (0, None)."""
        size = self.part.size()
        if not size:
            self.part.discard()
            return 0, None
        meta = self.part.read_sidecar()
        validator = meta.get("etag") or meta.get("last_modified")
        if (
            meta.get("url") != redact_url(self.item.url)
            or meta.get("sha256") != self.item.sha256
            or "segments" in meta  # written by segments, not a prefix: this one stream starts over
            or not validator
            or size > self.limit
        ):
            self.part.discard()
            return 0, None
        return size, validator

    async def _verify_complete(self, hasher: hashlib._Hash, size: int) -> int:
        """A part that already has every byte (killed between the last write and the rename)."""
        if hasher.hexdigest() == self.item.sha256:
            await asyncio.to_thread(os.chmod, self.part.path, self.item.mode)
            return size
        self.part.discard()
        raise self._mismatch(hasher.hexdigest())

    async def _request(
        self, offset: int, validator: str | None, hasher: hashlib._Hash, guard: RateGuard
    ) -> int:
        extra = {"Range": f"bytes={offset}-", "If-Range": validator} if offset and validator else None
        response = await send_following(
            self.client, self.item.url, self.owner._options, self.redact,
            item_headers=self.item.headers, extra=extra,
        )  # fmt: skip
        self.opened()
        try:
            status = response.status_code
            if offset and (
                status == 416 or (status == 206 and not self._continues(response, offset, validator))
            ):
                log.info("%s: the server will not resume at %d; starting over", self.item.key, offset)
                raise _StartOver
            if status == 206 and not offset:
                raise TransferError(f"{self.shown}: partial content to a full request; retrying")
            check_status(response)
            if status == 200:
                if offset:
                    log.info("%s: the file changed or range is unsupported; starting over", self.item.key)
                offset, hasher = 0, hashlib.sha256()
                self.part.write_sidecar(self.sidecar(response))
            return await self._stream(response, offset, hasher, guard)
        finally:
            await response.aclose()

    def _continues(self, response: httpx.Response, offset: int, validator: str | None) -> bool:
        """A 206 that starts where our part ends, for the same version of the file."""
        value = response.headers.get("content-range", "")
        unit, _, rest = value.partition(" ")
        start = rest.partition("-")[0]
        if unit.strip().lower() != "bytes" or not start.isdigit() or int(start) != offset:
            return False
        etag = response.headers.get("etag")
        return not (etag and validator and validator.startswith('"') and etag != validator)

    async def _stream(
        self, response: httpx.Response, offset: int, hasher: hashlib._Hash, guard: RateGuard
    ) -> int:
        fd = self.part.open(append=offset > 0)
        sink = Sink(fd, hasher, self.owner._write)
        received = 0
        # Without a size in the manifest, the bars show what the server announced (we ask for identity
        # encoding, so Content-Length counts the bytes we receive; a 206's counts the rest).
        announced = response.headers.get("content-length", "")
        total = (
            self.item.size
            if self.item.size is not None or not announced.isdigit()
            else offset + int(announced)
        )
        emit = self.owner._emit
        link = self.owner._link
        last = time.monotonic()
        body = read_capped(response, self.limit, guard, self.redact, self._too_large, offset=offset)
        try:
            try:
                async with contextlib.aclosing(body):
                    async for chunk in body:
                        received += len(chunk)
                        await sink.feed(chunk)
                        if self.counted:
                            link.add_bytes(len(chunk))
                            if link.tick():
                                self.owner._dispatch()
                        now = time.monotonic()
                        if now - last >= PROGRESS_EVERY:
                            last = now
                            emit(Progress(self.item.key, offset + received, total))
                digest = await sink.finish(self.item.mode)
            finally:
                sink.close()
        except OSError as exc:  # the part file's own I/O: the network's arrive as FetchErrors
            raise self.write_failed(exc, f" after {offset + received} bytes") from exc
        except (SizeLimitError, HashMismatchError):
            self.part.discard()
            raise
        done = offset + received
        if self.item.size is not None and done < self.item.size:
            raise TransferError(
                f"{self.shown}: body ended after {done} of {self.item.size} bytes; will resume"
            )
        if digest != self.item.sha256:
            self.part.discard()
            raise self._mismatch(digest)
        emit(Progress(self.item.key, done, total))
        return done

    def _too_large(self) -> SizeLimitError:
        what = "the item's size" if self.item.size is not None else "the max_bytes cap"
        return SizeLimitError(
            f"{self.shown}: more than {self.limit} bytes ({what}); the body was cut and discarded; "
            "check the item's url and size"
        )

    def _mismatch(self, actual: str) -> HashMismatchError:
        return mismatch(self.item, actual)


class _StartOver(Exception):
    """The server will not continue our part (416, a 206 at the wrong offset): restart from zero."""


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _copy_hashed(source: Path, dest: Path, limit: int | None) -> tuple[int, str]:
    """Copy `source` to a new 0600 file at `dest`, hashing as it goes; at most `limit` + 1 bytes."""
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as src:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            while block := src.read(1024 * 1024):
                size += len(block)
                digest.update(block)
                out.write(block)
                if limit is not None and size > limit:
                    break
            out.flush()
            os.fsync(out.fileno())
    return size, digest.hexdigest()
