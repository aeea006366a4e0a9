"""POST a JSON document to an admin's webhook: the HTTP half of `progress.webhook`.

It lives in `fetch/` because only this package imports httpx, and it follows the downloads' rules
through the same parts: the client from `make_client` (CA bundle, client certificate, proxy, the
environment ignored), the auth headers configured for the webhook's host, `check_status` and the one
retry loop. Redirects are not followed (a redirect could carry the payload somewhere else). Every
message names the URL with its userinfo and query values masked and header values scrubbed, since
webhook URLs usually carry a token.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from bootstrapper.errors import ConfigError, FetchError, TransferError
from bootstrapper.fetch.http import check_status, make_client, translate
from bootstrapper.fetch.model import FetchOptions
from bootstrapper.fetch.redact import Redactor, redact_url, secrets_of
from bootstrapper.fetch.retry import RetryPolicy, Sleep, with_retries

__all__ = ["Sleep", "WebhookResult", "check_webhook_url", "post_json"]


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


async def post_json(
    url: str,
    payload: Mapping[str, Any],
    options: FetchOptions,
    *,
    headers: Mapping[str, str] | None = None,
    attempts: int = 4,
    timeout: float = 10.0,
    backoff: float = 1.0,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
) -> WebhookResult:
    """POST `payload` as JSON; return the status and the attempts it took, or raise a `FetchError`.

    `headers` are the webhook's own; the settings' headers for its host are sent too.
    """
    check_webhook_url(url, allow_http=options.allow_http)
    target = httpx.URL(url)
    redact = Redactor([*secrets_of(url, headers), *options.secrets()])
    sent = {**options.headers_for(target.host, target.port), **(headers or {})}
    sent["Content-Type"] = "application/json"
    body = json.dumps(payload).encode()
    tries = 0

    async def once() -> WebhookResult:
        nonlocal tries
        tries += 1
        request = client.build_request("POST", target, headers=sent, content=body)
        try:
            response = await client.send(request, stream=True)
        except (httpx.HTTPError, ssl.SSLError) as exc:
            raise translate(exc, url, redact) from exc
        try:
            check_status(response, ok=lambda status: 200 <= status < 300)
        finally:
            await response.aclose()  # the body is never read: a server cannot make us hold one
        return WebhookResult(response.status_code, tries)

    async with make_client(options, transport, timeout=timeout) as client:
        try:
            return await with_retries(once, RetryPolicy.of(options, backoff, attempts=attempts), sleep=sleep)
        except FetchError as exc:
            if not exc.retryable:
                raise
            raise TransferError(f"webhook {exc} (gave up after {tries} attempts)") from exc
