"""The one manifest reader behind `validate`, `plan`, `convert`, `run` and the daemon.

A path is read from disk; a URL is fetched (retried until a deadline: a Mac's network comes up late) and
its relative item URLs resolve against it. httpx is imported only when a URL is read, so the local
commands stay fast.

With trusted public keys configured (`Trust`), the manifest's minisign signature (`<path>.minisig`, or
`<URL>.minisig` on the same server) is checked here, on the very bytes that are then parsed, before
anything else reads them: every command gets the same refusals, and no caller can forget the check.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bootstrapper.errors import ClientStatusError, UsageError
from bootstrapper.manifest.load import load_bytes, read_file
from bootstrapper.manifest.model import Loaded
from bootstrapper.manifest.signature import PublicKey, Verified, parse_public_key, verify

if TYPE_CHECKING:
    from bootstrapper.config import Config
    from bootstrapper.fetch import FetchOptions

#: How long the one-shot commands keep trying to fetch a manifest URL.
FETCH_DEADLINE = 30.0
#: A .minisig is four short lines; anything this large is not one.
SIGNATURE_MAX_BYTES = 64 * 1024
#: The signature gets at least this long after a slow manifest download used up the deadline.
SIGNATURE_MIN_DEADLINE = 10.0
SIGNATURE_SUFFIX = ".minisig"


@dataclass(frozen=True)
class Trust:
    """Which signatures a manifest needs: none without keys; else one of `keys`, fresh enough."""

    keys: tuple[PublicKey, ...] = ()
    #: The profile's floor (`manifest_min_serial`).
    min_serial: int = 0
    #: The highest serial this Mac already accepted (from the state file), None when none yet.
    last_serial: int | None = None

    @property
    def required(self) -> bool:
        return bool(self.keys)

    @classmethod
    def of(cls, keys: Sequence[str], min_serial: int = 0, last_serial: int | None = None) -> Trust:
        """Parse the configured key lines; a malformed one is a one-line `SignatureError` naming it."""
        return cls(tuple(parse_public_key(k) for k in keys), min_serial, last_serial)

    @classmethod
    def from_config(cls, config: Config, last_serial: int | None = None) -> Trust:
        return cls.of(config.manifest_public_keys, config.manifest_min_serial, last_serial)


def command_trust(public_keys: Sequence[str] | None) -> Trust:
    """The trust of `validate` and `plan`: `--public-key` flags, else the settings (profile, environment)."""
    import os

    from bootstrapper.config import load_config
    from bootstrapper.paths import Paths

    flags = {"manifest_public_keys": list(public_keys) if public_keys else None}
    config, _ = load_config(Paths(), dict(os.environ), flags)
    return Trust.from_config(config)


@dataclass(frozen=True)
class Source:
    """A loaded manifest, the exact bytes it came from, and who signed them (None when unchecked)."""

    loaded: Loaded
    data: bytes
    verified: Verified | None


def is_url(ref: str) -> bool:
    """A manifest reference is a URL when it has a scheme; everything else is a path."""
    return "://" in ref


def signature_url(url: str) -> str:
    """Where a manifest URL's signature is: `.minisig` on its path, so a signed URL's query stays valid."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path + SIGNATURE_SUFFIX))


async def fetch_source(
    ref: str, options: FetchOptions, deadline: float, trust: Trust | None = None, *, trusted: bool = False
) -> Source:
    """Read `ref` (a URL is retried until `deadline` seconds from now), verify it when `trust` needs it,
    then parse it. A signature problem raises `SignatureError` before the manifest is parsed.
    `trusted`: a local file must be one nobody but root (or us) could have written (the daemon's)."""
    trust = trust or Trust()
    if not is_url(ref):
        return _local(ref, options.allow_http, trust, trusted=trusted)
    if ref.startswith("http://") and not options.allow_http:
        raise UsageError(f"{ref}: http:// is refused; use https://, or pass --allow-http for a lab")
    from bootstrapper.fetch import fetch_manifest, redact_url

    started = time.monotonic()
    data = await fetch_manifest(ref, options, deadline=deadline)
    shown = redact_url(ref)
    verified = None
    if trust.required:
        left = max(deadline - (time.monotonic() - started), SIGNATURE_MIN_DEADLINE)
        try:
            sig: bytes | None = await fetch_manifest(
                signature_url(ref), options, deadline=left, max_bytes=SIGNATURE_MAX_BYTES
            )
        except ClientStatusError as exc:
            if exc.status not in (404, 410):
                raise
            sig = None
        verified = _verify(data, sig, trust, shown)
    loaded = load_bytes(data, shown, location=ref, local=False, allow_http=options.allow_http)
    return Source(loaded, data, verified)


def _local(ref: str, allow_http: bool, trust: Trust, *, trusted: bool = False) -> Source:
    path = Path(ref)
    data = read_file(path, ref, trusted=trusted)
    verified = None
    if trust.required:
        sig_path = path.with_name(path.name + SIGNATURE_SUFFIX)
        sig = read_file(sig_path, str(sig_path), trusted=trusted) if sig_path.exists() else None
        verified = _verify(data, sig, trust, ref)
    loaded = load_bytes(data, ref, location=path.resolve().as_uri(), local=True, allow_http=allow_http)
    return Source(loaded, data, verified)


def _verify(data: bytes, sig: bytes | None, trust: Trust, shown: str) -> Verified:
    return verify(
        data,
        sig,
        trust.keys,
        now=datetime.now(UTC),
        min_serial=trust.min_serial,
        last_serial=trust.last_serial,
        source=shown,
    )


async def load_manifest(
    ref: str, options: FetchOptions, deadline: float, trust: Trust | None = None
) -> Loaded:
    """A manifest from a path or a URL; a URL is retried until `deadline` seconds from now."""
    return (await fetch_source(ref, options, deadline, trust)).loaded


def read_checked(ref: str, *, allow_http: bool = False, trust: Trust | None = None) -> Source:
    """`fetch_source` for the one-shot commands, with the daemon's download settings and proxy."""
    import asyncio

    from bootstrapper.engine.network import command_options

    if not is_url(ref):
        return _local(ref, allow_http, trust or Trust())
    options = command_options(allow_http, ref)
    return asyncio.run(fetch_source(ref, options, FETCH_DEADLINE, trust))


def read_manifest(ref: str, *, allow_http: bool = False, trust: Trust | None = None) -> Loaded:
    """The manifest alone, for the one-shot commands."""
    return read_checked(ref, allow_http=allow_http, trust=trust).loaded


def read_source(ref: str, *, allow_http: bool = False) -> tuple[Loaded, bytes]:
    """The manifest and the bytes it was read from (`convert` keeps the hashes exactly as written)."""
    source = read_checked(ref, allow_http=allow_http)
    return source.loaded, source.data
