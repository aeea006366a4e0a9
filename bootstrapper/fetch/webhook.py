"""POST a JSON document to an admin's webhook: the HTTP half of `progress.webhook`.

It lives in `fetch/` because only this package imports httpx. The rules are the downloader's: https
only unless the settings allow http, proxy and CA variables from the environment ignored, redirects not
followed (a redirect could carry the payload somewhere else), 408/425/429/5xx and connection errors
retried with capped exponential backoff, other 4xx final. Every message names the URL with its
userinfo and query values masked and header values scrubbed, since webhook URLs usually carry a token.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from bootstrapper import __version__
from bootstrapper.errors import ClientStatusError, ConfigError, RetryableStatusError, TransferError
from bootstrapper.fetch.redact import Redactor, redact_url

RETRYABLE = frozenset({408, 425, 429}) | frozenset(range(500, 600))

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class WebhookResult:
    status: int
    attempts: int


def check_webhook_url(url: str, *, allow_http: bool = False) -> None:
    """Refuse a URL we would not post to, at configuration time, with a message that says why."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError(f"webhook url {redact_url(url)}: not a valid URL") from None
    allowed = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in allowed or not parts.hostname:
        hint = "" if allow_http else " (plain http must be allowed in the settings)"
        raise ConfigError(f"webhook url {redact_url(url)}: expected an https:// URL{hint}")


def secrets_of(url: str, headers: Mapping[str, str] | None = None) -> list[str]:
    """Values that must never appear in a log line: header values, URL credentials, query values."""
    parts = urlsplit(url)
    found = list((headers or {}).values())
    found += [word for value in (headers or {}).values() for word in value.split()]
    found += [v for v in (parts.username, parts.password) if v]
    found += [v for _, v in parse_qsl(parts.query, keep_blank_values=True) if v]
    return found


async def post_json(
    url: str,
    payload: Mapping[str, Any],
    *,
    headers: Mapping[str, str] | None = None,
    allow_http: bool = False,
    attempts: int = 4,
    timeout: float = 10.0,
    backoff: float = 1.0,
    backoff_cap: float = 30.0,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
) -> WebhookResult:
    """POST `payload` as JSON; return the status and the attempts it took, or raise a `FetchError`."""
    check_webhook_url(url, allow_http=allow_http)
    redact = Redactor(secrets_of(url, headers))
    shown = redact_url(url)
    sent_headers = {"User-Agent": f"bootstrapper/{__version__}", **(headers or {})}
    last: Exception | None = None
    async with httpx.AsyncClient(
        timeout=timeout, trust_env=False, follow_redirects=False, transport=transport
    ) as client:
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                await sleep(_delay(attempt, backoff, backoff_cap, last))
            try:
                response = await client.post(url, json=payload, headers=sent_headers)
            except httpx.HTTPError as exc:
                last = TransferError(redact(f"webhook {shown}: {type(exc).__name__}: {exc}"))
                continue
            status = response.status_code
            if 200 <= status < 300:
                return WebhookResult(status, attempt)
            if status in RETRYABLE:
                last = RetryableStatusError(
                    f"webhook {shown}: HTTP {status}",
                    status,
                    _retry_after(response.headers.get("retry-after")),
                )
                continue
            what = "redirects are not followed" if 300 <= status < 400 else "not retried"
            raise ClientStatusError(f"webhook {shown}: HTTP {status} ({what})", status)
    raise TransferError(f"{last} (gave up after {attempts} attempts)")


def _delay(attempt: int, base: float, cap: float, error: Exception | None) -> float:
    wait = min(cap, base * 2.0 ** (attempt - 2)) * random.uniform(0.75, 1.0)  # noqa: S311 (jitter)
    if isinstance(error, RetryableStatusError) and error.retry_after is not None:
        wait = max(wait, min(error.retry_after, cap))
    return wait


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
