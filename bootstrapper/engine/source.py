"""The one manifest reader behind `validate`, `plan`, `convert`, `run` and the daemon.

A path is read from disk; a URL is fetched (retried until a deadline: a Mac's network comes up late) and
its relative item URLs resolve against it. httpx is imported only when a URL is read, so the local
commands stay fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bootstrapper.errors import UsageError
from bootstrapper.manifest.load import load_bytes, load_file
from bootstrapper.manifest.model import Loaded

if TYPE_CHECKING:
    from bootstrapper.fetch import FetchOptions

#: How long the one-shot commands keep trying to fetch a manifest URL.
FETCH_DEADLINE = 30.0


def is_url(ref: str) -> bool:
    """A manifest reference is a URL when it has a scheme; everything else is a path."""
    return "://" in ref


async def load_manifest(ref: str, options: FetchOptions, deadline: float) -> Loaded:
    """A manifest from a path or a URL; a URL is retried until `deadline` seconds from now."""
    if not is_url(ref):
        return load_file(Path(ref), allow_http=options.allow_http, display=ref)
    if ref.startswith("http://") and not options.allow_http:
        raise UsageError(f"{ref}: http:// is refused; use https://, or pass --allow-http for a lab")
    from bootstrapper.fetch import fetch_manifest, redact_url

    data = await fetch_manifest(ref, options, deadline=deadline)
    return load_bytes(data, redact_url(ref), location=ref, local=False, allow_http=options.allow_http)


def read_manifest(ref: str, *, allow_http: bool = False) -> Loaded:
    """`load_manifest` for the one-shot commands, with default download settings."""
    if not is_url(ref):
        return load_file(Path(ref), allow_http=allow_http, display=ref)
    import asyncio

    from bootstrapper.fetch import FetchOptions

    return asyncio.run(load_manifest(ref, FetchOptions(allow_http=allow_http), FETCH_DEADLINE))


def read_source(ref: str, *, allow_http: bool = False) -> tuple[Loaded, bytes]:
    """The manifest and the bytes it was read from (`convert` keeps the hashes exactly as written)."""
    if not is_url(ref):
        loaded = load_file(Path(ref), allow_http=allow_http, display=ref)
        return loaded, Path(ref).read_bytes()
    if ref.startswith("http://") and not allow_http:
        raise UsageError(f"{ref}: http:// is refused; use https://, or pass --allow-http for a lab")
    import asyncio

    from bootstrapper.fetch import FetchOptions, fetch_manifest, redact_url

    options = FetchOptions(allow_http=allow_http)
    data = asyncio.run(fetch_manifest(ref, options, deadline=FETCH_DEADLINE))
    loaded = load_bytes(data, redact_url(ref), location=ref, local=False, allow_http=allow_http)
    return loaded, data
