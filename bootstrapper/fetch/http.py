"""The HTTP side of downloads, the manifest and the webhook: one client factory, one status check,
one capped body read, and failures turned into our errors.

Every client comes from `make_client`, so the CA bundle, the client certificate, the proxy (with its
exceptions) and the environment policy are the same for every request we make. Redirects are followed
here rather than by httpx so that every hop is checked (https only, no loops, at most
`MAX_REDIRECTS`) and headers are chosen per hop: an item's headers go to the item's own origin only,
and each host gets only the auth headers configured for it.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import ssl
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from http import HTTPStatus
from types import TracebackType

import certifi
import httpx

from bootstrapper import __version__
from bootstrapper.errors import (
    CertificateError,
    ClientStatusError,
    ConfigError,
    FetchError,
    HTTPStatusError,
    RetryableStatusError,
    SlowTransferError,
    TransferError,
    UnsafeURLError,
)
from bootstrapper.fetch.model import FetchOptions
from bootstrapper.fetch.redact import Redactor, redact_url

MAX_REDIRECTS = 10
REDIRECTS = frozenset({301, 302, 303, 307, 308})

_HINTS = {
    401: "check the auth headers configured for this host",
    403: "check the auth headers configured for this host and that the file is shared",
    404: "check the URL",
    410: "the file was removed; update the manifest",
}


class _RedactURLs(logging.Filter):
    """httpx logs every request's full URL at INFO: a presigned URL's signature would reach the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(str(a)) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


logging.getLogger("httpx").addFilter(_RedactURLs())


def _larger_reads() -> None:
    """Read 256 KiB per socket read instead of httpcore's 64 KiB: twice the throughput on loopback.

    Per-read overhead (anyio, h11) caps a 64 KiB reader near 400 MiB/s, below a fast LAN or a
    local cache. Only the read size changes, and only if httpcore still has the attribute we know.
    """
    try:
        from httpcore._async.http11 import AsyncHTTP11Connection
    except ImportError:
        return
    if getattr(AsyncHTTP11Connection, "READ_NUM_BYTES", None) == 64 * 1024:
        AsyncHTTP11Connection.READ_NUM_BYTES = 256 * 1024


_larger_reads()


def make_client(
    options: FetchOptions,
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    timeout: float | None = None,
) -> httpx.AsyncClient:
    """The one client: environment ignored (trust_env=False), TLS from settings, no automatic redirects.

    `timeout` caps every phase at once, for callers (the webhook) that must not wait a download's time.
    A `transport` (tests) carries every request, proxy or not.
    """
    connect = options.connect_timeout if timeout is None else min(timeout, options.connect_timeout)
    read = options.read_timeout if timeout is None else min(timeout, options.read_timeout)
    limits = httpx.Timeout(connect=connect, read=read, write=read, pool=connect)
    verify = ssl_context(options)
    return httpx.AsyncClient(
        verify=verify,
        timeout=limits,
        trust_env=False,
        follow_redirects=False,
        transport=transport or _transport(options, verify),
        # identity: we hash the bytes as stored on the server, never a transfer-encoded variant
        headers={"User-Agent": f"bootstrapper/{__version__}", "Accept-Encoding": "identity"},
    )


def _transport(options: FetchOptions, verify: ssl.SSLContext) -> httpx.AsyncBaseTransport:
    """Direct, through the proxy, or per host when the proxy has exceptions."""
    pool = httpx.Limits(max_connections=None, max_keepalive_connections=options.concurrency)
    direct = httpx.AsyncHTTPTransport(verify=verify, limits=pool, trust_env=False)
    if options.proxy is None:
        return direct
    proxied = httpx.AsyncHTTPTransport(verify=verify, limits=pool, trust_env=False, proxy=options.proxy)
    if not options.proxy_bypass:
        return proxied
    return _ProxyExceptions(direct, proxied, options)


class _ProxyExceptions(httpx.AsyncBaseTransport):
    """Each request through the proxy, or straight to its host when the host is one of the exceptions.

    A transport rather than httpx `mounts`: mount patterns cannot say "any address in 169.254/16" or
    "any name without a dot", which the Mac's list can.
    """

    def __init__(
        self, direct: httpx.AsyncBaseTransport, proxied: httpx.AsyncBaseTransport, options: FetchOptions
    ) -> None:
        self._direct = direct
        self._proxied = proxied
        self._bypass = options.proxy_bypass

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        direct = self._bypass.applies_to(request.url.host)
        return await (self._direct if direct else self._proxied).handle_async_request(request)

    async def aclose(self) -> None:
        try:
            await self._direct.aclose()
        finally:
            await self._proxied.aclose()


def ssl_context(options: FetchOptions) -> ssl.SSLContext:
    """The system's roots (or certifi's) plus the configured CA bundle; a client certificate for mutual TLS.

    The system store is what an MDM installs a company root into and what a TLS-inspecting proxy's
    CA is trusted through; on a Mac truststore asks the Security framework, elsewhere OpenSSL's
    default locations (SSL_CERT_FILE / SSL_CERT_DIR).
    """
    ctx: ssl.SSLContext
    if options.tls_trust == "system":
        import truststore

        ctx = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    else:
        ctx = ssl.create_default_context(cafile=certifi.where())
    if options.ca_bundle is not None:
        try:
            ctx.load_verify_locations(cafile=str(options.ca_bundle))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"ca_bundle {options.ca_bundle}: cannot load it ({exc}); give a PEM file"
            ) from exc
    if options.client_cert is not None:
        key = str(options.client_key) if options.client_key is not None else None
        try:
            ctx.load_cert_chain(certfile=str(options.client_cert), keyfile=key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"client_cert {options.client_cert}: cannot load it ({exc}); give PEM certificate and key"
            ) from exc
    return ctx


def check_scheme(url: httpx.URL, options: FetchOptions, *, redirected_from: str | None = None) -> None:
    if url.scheme == "https" or (url.scheme == "http" and options.allow_http):
        if url.userinfo:
            raise UnsafeURLError(
                f"{redact_url(str(url))}: the URL contains credentials; configure auth headers instead"
            )
        return
    shown = redact_url(str(url))
    if redirected_from is not None:
        raise UnsafeURLError(
            f"{redirected_from}: redirected to {shown}, which is not https; refused "
            "(fix the server, or set allow_http if plain http is really intended)"
        )
    raise UnsafeURLError(f"{shown}: not an https URL; use https (or set allow_http if really intended)")


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    port = url.port or {"https": 443, "http": 80}.get(url.scheme)
    return (url.scheme, url.host.lower(), port)


async def send_following(
    client: httpx.AsyncClient,
    url: str,
    options: FetchOptions,
    redact: Redactor,
    *,
    item_headers: Mapping[str, str],
    extra: Mapping[str, str] | None = None,
) -> httpx.Response:
    """GET `url` (streamed), following redirects by hand; the caller closes the response.

    `item_headers` go to the first URL's origin only; `extra` (Range, If-Range) goes to every hop.
    """
    current = httpx.URL(url)
    first = _origin(current)
    seen = {str(current)}
    check_scheme(current, options)
    for _hop in range(MAX_REDIRECTS + 1):
        headers = dict(options.headers_for(current.host, current.port))
        if _origin(current) == first:
            headers.update(item_headers)
        if extra:
            headers.update(extra)
        request = client.build_request("GET", current, headers=headers)
        try:
            response = await client.send(request, stream=True)
        except (httpx.HTTPError, ssl.SSLError) as exc:
            raise translate(exc, str(current), redact) from exc
        if response.status_code not in REDIRECTS:
            return response
        location = response.headers.get("location")
        await response.aclose()
        shown = redact_url(str(current))
        if not location:
            raise UnsafeURLError(f"{shown}: redirect without a Location; fix the server or the item's url")
        try:
            target = current.join(location)
        except httpx.InvalidURL as exc:
            raise UnsafeURLError(f"{shown}: redirect to an invalid URL; fix the server") from exc
        check_scheme(target, options, redirected_from=shown)
        if str(target) in seen:
            raise UnsafeURLError(f"{shown}: redirect loop back to {redact_url(str(target))}; fix the server")
        seen.add(str(target))
        current = target
    raise UnsafeURLError(
        f"{redact_url(url)}: more than {MAX_REDIRECTS} redirects; point the item at the final URL"
    )


def check_status(response: httpx.Response, *, ok: Callable[[int], bool] = lambda s: s in (200, 206)) -> None:
    """Raise for a status `ok` refuses, as the error class that says whether a retry can help."""
    status = response.status_code
    if ok(status):
        return
    shown = redact_url(str(response.request.url))
    # the standard phrase, not the server's: its text could carry control sequences
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "unknown status"
    if status in RetryableStatusError.STATUSES:
        wait = retry_after(response.headers.get("retry-after"))
        raise RetryableStatusError(
            f"{shown}: HTTP {status} {phrase} (a server error: it may recover)", status, wait
        )
    if status in REDIRECTS:  # only requests that must not move (the webhook's POST) get here
        raise ClientStatusError(
            f"{shown}: HTTP {status} {phrase}; redirects are not followed, give the final URL", status
        )
    if 400 <= status < 500:
        hint = _HINTS.get(status, "check the URL and the headers")
        raise ClientStatusError(f"{shown}: HTTP {status} {phrase}; {hint}", status)
    raise HTTPStatusError(f"{shown}: unexpected HTTP {status} {phrase}; check the server")


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def translate(exc: Exception, url: str, redact: Redactor) -> FetchError:
    """A network failure as one of ours: a line that names the (redacted) URL and what to do.

    Mostly httpx errors; an `ssl.SSLError` can also escape httpcore raw (a TLS 1.3 server's alert,
    such as "certificate required", arrives on the first read).
    """
    shown = redact_url(url)
    cause = exc.__cause__ or exc.__context__
    detail = redact(str(exc) or (str(cause) if cause is not None else "") or "no detail")
    if isinstance(exc, httpx.ConnectError | ssl.SSLError) and _certificate_failure(exc):
        return CertificateError(
            f"{shown}: the server's TLS certificate is not trusted ({detail}); "
            "if it is signed by your own CA, install it in the system store or set ca_bundle"
        )
    if isinstance(exc, ssl.SSLError) and "ALERT" in str(exc).upper():
        return CertificateError(
            f"{shown}: the server refused the TLS handshake ({detail}); "
            "if it requires a client certificate, set client_cert and client_key"
        )
    if isinstance(exc, httpx.TimeoutException):
        return TransferError(f"{shown}: timed out ({type(exc).__name__}); check the network")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return UnsafeURLError(f"{shown}: {detail}; fix the URL")
    if isinstance(exc, httpx.RemoteProtocolError):
        return TransferError(f"{shown}: the server broke off the transfer ({detail}); retrying helps")
    return TransferError(f"{shown}: transfer failed ({type(exc).__name__}: {detail}); check the network")


def content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "").strip()
    return int(value) if value.isdigit() else None


async def read_capped(
    response: httpx.Response,
    limit: int,
    guard: RateGuard,
    redact: Redactor,
    too_large: Callable[[], FetchError],
    *,
    offset: int = 0,
) -> AsyncGenerator[bytes, None]:
    """The body's raw chunks, cut at `limit` bytes in all (counting `offset` bytes already held).

    A declared Content-Length over the limit fails before a byte is read; a body that ends short of
    it is a transfer failure (retryable); network failures arrive as our errors.
    """
    url = str(response.request.url)
    declared = content_length(response)
    if declared is not None and offset + declared > limit:
        raise too_large()
    received = 0
    try:
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if offset + received > limit:
                raise too_large()
            guard.add(len(chunk))
            yield chunk
    except (httpx.HTTPError, ssl.SSLError, ConnectionError) as exc:
        raise translate(exc, url, redact) from exc
    if declared is not None and received < declared:
        raise TransferError(
            f"{redact_url(url)}: body ended after {offset + received} of {offset + declared} bytes; retrying"
        )


def _certificate_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(cur):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


class RateGuard:
    """Aborts an attempt that moves fewer than `min_rate` bytes/s over a whole window (slow loris).

    The window restarts whenever it has seen enough bytes, so the timer only fires when a full
    window went by with too little data, even if no byte arrived at all to trigger a check.
    """

    def __init__(self, options: FetchOptions, url: str) -> None:
        self._need = int(options.min_rate * options.min_rate_window)
        self._rate = options.min_rate
        self._window = options.min_rate_window
        self._url = url
        self._got = 0
        self._timer = asyncio.timeout(None)

    async def __aenter__(self) -> RateGuard:
        await self._timer.__aenter__()
        if self._need > 0:
            self._timer.reschedule(asyncio.get_running_loop().time() + self._window)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._timer.__aexit__(kind, exc, tb)
        except TimeoutError as err:
            if not self._timer.expired():
                raise
            raise SlowTransferError(
                f"{redact_url(self._url)}: under {self._rate} bytes/s for "
                f"{self._window:g}s; the server or network is too slow, retrying"
            ) from err

    def add(self, n: int) -> None:
        self._got += n
        if self._need > 0 and self._got >= self._need:
            self._got = 0
            self._timer.reschedule(asyncio.get_running_loop().time() + self._window)
