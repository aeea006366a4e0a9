"""Keep secrets out of every message and log line the downloader writes.

URLs lose their userinfo and their query values (a presigned URL's signature is a credential);
configured header values are scrubbed from any text, including messages of exceptions we did not write.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlsplit, urlunsplit

_USERINFO = re.compile(r"(?<=//)[^/@\s]+@")
MASK = "***"


def redact_url(url: str) -> str:
    """The URL as it may be shown: no userinfo, query keys kept and their values masked.

    A plain path (a local manifest) is returned as it is: a `#` or `?` in a file name is no secret.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if not parts.scheme and not parts.netloc:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    query = "&".join(f"{k}={MASK}" for k, _ in parse_qsl(parts.query, keep_blank_values=True))
    if parts.query and not query:
        query = MASK
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


class Redactor:
    """Scrubs known secret values (and any ``//user:pass@``) from free text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole; very short values are
        # skipped because masking "1" everywhere would make every message unreadable.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        text = _USERINFO.sub(MASK + "@", text)
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text


def secrets_of(url: str, headers: Mapping[str, str] | None = None) -> list[str]:
    """Values that must never appear in a log line: header values, URL credentials, query values."""
    parts = urlsplit(url)
    found = list((headers or {}).values())
    found += [word for value in (headers or {}).values() for word in value.split()]
    found += [v for v in (parts.username, parts.password) if v]
    found += [v for _, v in parse_qsl(parts.query, keep_blank_values=True) if v]
    return found
