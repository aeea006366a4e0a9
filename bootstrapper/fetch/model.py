"""The values the downloader takes: one item to fetch, and the options that come from settings.

They validate themselves when built, so a bad value fails at the call that made it, with a message
that says how to fix it, and never half-way through a download.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal
from urllib.parse import urlsplit

from bootstrapper.fetch.proxy import ProxyBypass
from bootstrapper.hashing import is_sha256

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

#: RFC 9110 token characters: a header name outside them could smuggle a second header.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_EMPTY: Mapping[str, str] = MappingProxyType({})
_NO_AUTH: Mapping[str, Mapping[str, str]] = MappingProxyType({})


def _check_headers(headers: Mapping[str, str], where: str) -> Mapping[str, str]:
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"{where}: header name {name!r} is not a valid HTTP token")
        if any(c in value for c in "\r\n\0"):
            raise ValueError(f"{where}: the value of header {name!r} contains a line break or NUL")
    return MappingProxyType(dict(headers))


def check_url(url: str, where: str) -> None:
    """Refuse what can never be fetched safely; the scheme policy (allow_http) is checked per request."""
    parts = urlsplit(url)
    if parts.scheme == "file" and parts.path.startswith("/") and not parts.netloc:
        return  # an item beside a local manifest (the loader allows these only for a local manifest)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{where}: expected an https:// URL, got {parts.scheme or 'no'} scheme")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"{where}: the URL contains credentials; remove them and configure auth headers for the host"
        )


@dataclass(frozen=True)
class Download:
    """One file to fetch, verify and place."""

    #: Step id used in events, e.g. ``userland[2]``.
    key: str
    url: str
    #: Final path; its folder is created (0755) when missing.
    dest: Path
    #: Lower-case hex sha256 of the file; a hash a server supplies never counts.
    sha256: str
    #: Expected bytes; enforced while streaming. Unknown: the options' `max_bytes` caps the body.
    size: int | None = None
    #: Mode of the placed file.
    mode: int = 0o600
    #: Sent to the URL's own host only, never to a redirect target on another host.
    headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    #: Attempts = 1 + retries.
    retries: int = 3
    #: Base wait in seconds; doubles per attempt, with jitter, up to the options' `backoff_cap`.
    retrywait: float = 5.0

    def __post_init__(self) -> None:
        where = f"download {self.key!r}"
        check_url(self.url, where)
        if not is_sha256(self.sha256.lower()):
            raise ValueError(f"{where}: sha256 must be 64 hex digits, got {len(self.sha256)} characters")
        object.__setattr__(self, "sha256", self.sha256.lower())
        object.__setattr__(self, "dest", Path(self.dest))
        object.__setattr__(self, "headers", _check_headers(self.headers, where))
        if self.size is not None and self.size < 0:
            raise ValueError(f"{where}: size must be 0 or more, got {self.size}")
        if not 0 <= self.mode <= 0o7777:
            raise ValueError(f"{where}: mode must be between 0 and 0o7777, got {oct(self.mode)}")
        if self.retries < 0:
            raise ValueError(f"{where}: retries must be 0 or more, got {self.retries}")
        if self.retrywait < 0:
            raise ValueError(f"{where}: retrywait must be 0 or more, got {self.retrywait}")


@dataclass(frozen=True)
class FetchOptions:
    """Download settings (from config): limits, timeouts, TLS, proxy and per-host auth headers."""

    #: Items downloaded at once by `fetch_all`.
    concurrency: int = 4
    #: Cap on a body whose size the manifest does not give.
    max_bytes: int = 16 * GiB
    connect_timeout: float = 30.0
    #: Longest wait for any single read.
    read_timeout: float = 60.0
    #: Minimum throughput: fewer than `min_rate` bytes/s over a whole `min_rate_window` aborts the attempt.
    min_rate: int = 1 * KiB
    min_rate_window: float = 60.0
    #: Plain http for items and redirects; off by default and nothing in a manifest can turn it on.
    allow_http: bool = False
    #: file:// items: only for a manifest read from this machine's disk (its items sit beside it).
    local_files: bool = False
    #: Whose roots TLS trusts: "system" (the OS trust store, through truststore) or "certifi".
    tls_trust: Literal["system", "certifi"] = "system"
    #: Extra trusted CAs (PEM), added to those roots.
    ca_bundle: Path | None = None
    #: Client certificate (PEM) for mutual TLS, and its key when not in the same file.
    client_cert: Path | None = None
    client_key: Path | None = None
    #: Proxy URL (the `proxy` setting, or the Mac's HTTPS proxy); proxy variables in the environment
    #: are ignored.
    proxy: str | None = None
    #: Hosts reached directly although `proxy` is set (the Mac's proxy exceptions).
    proxy_bypass: ProxyBypass = field(default_factory=ProxyBypass)
    #: Headers per host name (``host`` or ``host:port``), sent to that host only.
    auth_headers: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: _NO_AUTH)
    #: Cap on the exponential backoff between attempts, seconds.
    backoff_cap: float = 60.0
    #: Cap on a server's Retry-After, seconds: a server cannot park us for hours.
    retry_after_cap: float = 120.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"fetch options: concurrency must be 1 or more, got {self.concurrency}")
        if self.max_bytes < 1:
            raise ValueError(f"fetch options: max_bytes must be 1 or more, got {self.max_bytes}")
        for name in ("connect_timeout", "read_timeout", "min_rate_window"):
            if getattr(self, name) <= 0:
                raise ValueError(f"fetch options: {name} must be more than 0, got {getattr(self, name)}")
        for name in ("min_rate", "backoff_cap", "retry_after_cap"):
            if getattr(self, name) < 0:
                raise ValueError(f"fetch options: {name} must be 0 or more, got {getattr(self, name)}")
        auth = {
            host.lower(): _check_headers(headers, f"fetch options: auth_headers[{host!r}]")
            for host, headers in self.auth_headers.items()
        }
        object.__setattr__(self, "auth_headers", MappingProxyType(auth))
        if self.proxy is not None:
            parts = urlsplit(self.proxy)
            if parts.scheme not in ("http", "https", "socks5") or not parts.hostname:
                raise ValueError("fetch options: proxy must be an http://, https:// or socks5:// URL")

    def headers_for(self, host: str, port: int | None) -> Mapping[str, str]:
        """The configured headers for one host: matched by ``host:port`` first, then by ``host``."""
        host = host.lower()
        if port is not None and f"{host}:{port}" in self.auth_headers:
            return self.auth_headers[f"{host}:{port}"]
        return self.auth_headers.get(host, _EMPTY)

    def secrets(self) -> list[str]:
        """Every configured header value: scrubbed from any text we show or log."""
        return [v for headers in self.auth_headers.values() for v in headers.values()]
