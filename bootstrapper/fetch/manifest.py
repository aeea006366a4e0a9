"""Fetch the manifest itself: the same client and checks, a small cap, retried until a deadline.

During enrollment the network often comes up late, so transfer failures are retried with backoff
until the deadline passes; a refusal (404, 401, a bad certificate, an unsafe redirect) fails at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable

import httpx

from bootstrapper.errors import FetchError, SizeLimitError, TransferError
from bootstrapper.fetch.http import RateGuard, backoff, check_status, make_client, send_following, translate
from bootstrapper.fetch.model import FetchOptions, MiB, check_url
from bootstrapper.fetch.redact import Redactor, redact_url

log = logging.getLogger(__name__)

#: First wait between manifest attempts; doubles up to the options' backoff_cap.
FIRST_WAIT = 2.0


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
    end = clock() + deadline
    rng = random.Random()  # noqa: S311 -- jitter, not a secret
    attempt = 0
    async with make_client(options, transport) as client:
        while True:
            attempt += 1
            try:
                return await _once(client, url, options, max_bytes)
            except TransferError as exc:
                left = end - clock()
                if left <= 0:
                    raise TransferError(
                        f"{shown}: no manifest after {deadline:g}s ({exc}); check the network and the URL"
                    ) from exc
                wait = min(left, backoff(attempt, FIRST_WAIT, options, exc, rng))
                log.info("manifest attempt %d failed (%s); next in %.1fs", attempt, exc, wait)
                if on_retry is not None:
                    on_retry(attempt, str(exc), wait)
                await sleep(wait)


async def _once(client: httpx.AsyncClient, url: str, options: FetchOptions, max_bytes: int) -> bytes:
    redact = Redactor(options.secrets())
    shown = redact_url(url)
    too_large = SizeLimitError(f"{shown}: the manifest is larger than {max_bytes} bytes; check the URL")
    async with RateGuard(options, url) as guard:
        response = await send_following(client, url, options, redact, item_headers={})
        try:
            check_status(response)
            if response.status_code != 200:
                raise TransferError(f"{shown}: partial content to a full request; retrying")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise too_large
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > max_bytes:
                    raise too_large
                guard.add(len(chunk))
        except (httpx.HTTPError, ssl.SSLError, ConnectionError) as exc:
            raise translate(exc, url, redact) from exc
        finally:
            await response.aclose()
    if declared.isdigit() and len(body) < int(declared):
        raise TransferError(f"{shown}: body ended after {len(body)} of {declared} bytes; retrying")
    return bytes(body)
