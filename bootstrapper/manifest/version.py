"""Loose version comparison, as admins expect it from macOS package versions.

`10.3` < `10.10`, `1.3.1-506` > `1.3.1`, `17.50+19` > `17.50`; numbers compare as numbers, text as
text, and a number sorts after text at the same position (so `1.0` > `1.0b2`).
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\d+|[a-zA-Z]+")


def _key(version: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((1, int(t)) if t.isdigit() else (0, t.lower()) for t in _TOKEN.findall(version))


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as `a` is older than, equal to or newer than `b`."""
    ka, kb = _key(a), _key(b)
    for x, y in zip(ka, kb, strict=False):
        if x != y:
            return -1 if x < y else 1
    if len(ka) == len(kb):
        return 0
    longer, sign = (ka, 1) if len(ka) > len(kb) else (kb, -1)
    # `1.0` == `1.0.0`; `1.0b2` < `1.0` (extra text is a pre-release); `1.0.1` > `1.0`.
    for extra in longer[min(len(ka), len(kb)) :]:
        if extra == (1, 0):
            continue
        return sign if extra[0] == 1 else -sign
    return 0
