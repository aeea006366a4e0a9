"""Make untrusted text (names from a manifest or a package, reasons from a server) safe to show a person.

A name like `"Chrome\\nCommand: RestartNow:"` would inject a reboot into DEPNotify's command file,
`"\\x1b]0;...\\x07"` rewrites the terminal's title, `[blink]` is rich markup, a bidi override shows text
in another order than it is stored, and a zero-width space makes `ad\\u200bmin` look like `admin`. So
everything shown — terminal, logs, command files, the webhook, `pkg info` — goes through `one_line`:

- line breaks, tabs and other white space become one space (runs folded, ends stripped);
- every other control character, format character (bidi controls, zero-width characters, BOM, soft
  hyphen) and lone surrogate is shown as an escape (`\\x1b`, `\\u202e`), never dropped, so a
  disguise stays visible;
- the result is cut at `limit` characters (`None`: no cut), and escaped for rich when `markup`.

It sits low (beside `errors`) so that the pure layers (`manifest`, `flatpkg`) use the same rules as
the progress sinks.
"""

from __future__ import annotations

import unicodedata

from rich.markup import escape

#: Unicode categories shown as escapes: controls, format characters, surrogates.
_ESCAPED = frozenset({"Cc", "Cf", "Cs"})


def one_line(text: object, limit: int | None = 200, *, markup: bool = False) -> str:
    """One printable line of `text`; see the module's rules."""
    out: list[str] = []
    space = True  # at the start, or just after a space: drop further white space
    for ch in str(text):
        if ch.isspace():
            if not space:
                out.append(" ")
            space = True
            continue
        space = False
        out.append(_escape(ch) if unicodedata.category(ch) in _ESCAPED else ch)
    line = "".join(out).rstrip(" ")
    if limit is not None and len(line) > limit:
        line = line[: max(limit - 1, 0)] + "…"
    return escape(line) if markup else line


def hidden(text: str) -> list[str]:
    """The characters of `text` that `one_line` shows as escapes, as those escapes, in order, once each.

    For refusing them where a disguise matters more than the text (item names), not only escaping them.
    """
    found = (_escape(ch) for ch in text if unicodedata.category(ch) in _ESCAPED)
    return list(dict.fromkeys(found))


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
