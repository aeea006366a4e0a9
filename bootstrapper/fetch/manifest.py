"""Fetch the manifest itself: the same client and checks, a small cap, retried until a deadline.

During enrollment the network often comes up late, so transfer failures are retried with backoff
until the deadline passes; a refusal (404, 401, a bad certificate, an unsafe redirect) fails at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import httpx

from bootstrapper.errors import ClientStatusError, ExitCode, FetchError, SizeLimitError, TransferError
from bootstrapper.fetch.http import RateGuard, check_status, make_client, read_capped, send_following
from bootstrapper.fetch.model import FetchOptions, MiB, check_url
from bootstrapper.fetch.redact import Redactor, redact_url
from bootstrapper.fetch.retry import RetryPolicy, with_retries

log = logging.getLogger(__name__)

#: First wait between manifest attempts; doubles up to the options' backoff_cap.
FIRST_WAIT = 2.0


class ManifestNotFoundError(ClientStatusError):
    """404/410 for the manifest itself: the URL given is wrong, which is bad input, not a failed run."""

    exit_code = ExitCode.USAGE


async def fetch_manifest(
    url: str,
    options: FetchOptions,
    deadline: float,
    max_bytes: int = 4 * MiB,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_retry: Callable[[int, str, float], None] | None = None,
) -> bytes:
    """The manifest's bytes. `deadline` is in seconds from now; retries stop once it has passed.

    `sleep` and `clock` are seams for tests; `on_retry(attempt, reason, wait)` reports each wait.
    """
    try:
        check_url(url, "manifest")
    except ValueError as exc:
        raise FetchError(f"{redact_url(url)}: {exc}") from exc
    shown = redact_url(url)

    def retrying(attempt: int, error: FetchError, wait: float) -> None:
        log.info("manifest attempt %d failed (%s); next in %.1fs", attempt, error, wait)
        if on_retry is not None:
            on_retry(attempt, str(error), wait)

    async with make_client(options, transport) as client:
        try:
            return await with_retries(
                lambda: _once(client, url, options, max_bytes),
                RetryPolicy.of(options, FIRST_WAIT, deadline=deadline),
                sleep=sleep,
                clock=clock,
                on_retry=retrying,
            )
        except ClientStatusError as exc:
            if exc.status not in (404, 410):
                raise
            raise ManifestNotFoundError(
                f"the manifest URL {shown} was not found (HTTP {exc.status}); check the manifest URL",
                exc.status,
            ) from exc
        except FetchError as exc:
            if not exc.retryable:
                raise
            raise TransferError(
                f"{shown}: no manifest after {deadline:g}s ({exc}); check the network and the URL"
            ) from exc


async def _once(client: httpx.AsyncClient, url: str, options: FetchOptions, max_bytes: int) -> bytes:
    redact = Redactor(options.secrets())
    shown = redact_url(url)

    def too_large() -> FetchError:
        return SizeLimitError(f"{shown}: the manifest is larger than {max_bytes} bytes; check the URL")

    async with RateGuard(options, url) as guard:
        response = await send_following(client, url, options, redact, item_headers={})
        try:
            check_status(response)
            if response.status_code != 200:
                raise TransferError(f"{shown}: partial content to a full request; retrying")
            body = bytearray()
            chunks = read_capped(response, max_bytes, guard, redact, too_large)
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    body += chunk
        finally:
            await response.aclose()
    return bytes(body)
