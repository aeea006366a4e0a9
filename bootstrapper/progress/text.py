"""Make untrusted text (names from a manifest, reasons from a server) safe to show or to write.

A name like `"Chrome\\nCommand: RestartNow:"` would inject a reboot into DEPNotify's command file, and
`"\\x1b]0;...\\x07"` rewrites the terminal's title; `[blink]` is rich markup. So every sink shows
text through `one_line` (and `rich.markup.escape` on the console): control characters, bidi overrides
and line breaks never get through.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from rich.markup import escape

#: Bidirectional overrides and isolates make text display in a different order than it is stored.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
_SPACES = re.compile(r"\s+")


def one_line(text: object, limit: int = 200) -> str:
    """One printable line: controls dropped, runs of whitespace folded, at most `limit` characters."""
    kept = []
    for ch in str(text):
        if ch in _BIDI:
            continue
        if ch in "\t\n\r\v\f\x85\u2028\u2029":
            kept.append(" ")
        elif unicodedata.category(ch) != "Cc":
            kept.append(ch)
    line = _SPACES.sub(" ", "".join(kept)).strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


def escape_markup(text: object, limit: int = 200) -> str:
    """`one_line`, then escaped for rich so that `[bold]` prints as itself."""
    return escape(one_line(text, limit))


def shown_source(source: str) -> str:
    """A manifest location as it may be logged: a URL loses its credentials and query values.

    The same rule as `fetch.redact.redact_url`, restated here so that the display sinks do not pull
    in the HTTP stack.
    """
    if "://" not in source:
        return source
    try:
        parts = urlsplit(source)
    except ValueError:
        return "***"
    query = "&".join(f"{k}=***" for k, _ in parse_qsl(parts.query, keep_blank_values=True))
    if parts.query and not query:
        query = "***"
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, query, ""))
