"""Fill `@NAME@` placeholders in the package templates (scripts, Distribution, smoke test).

Strict on purpose: a placeholder with no value, or a value nobody asked for a template to use, is an
error at build time, never a literal `@NAME@` in a script that runs as root on a fleet.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")


class TemplateError(ValueError):
    """A template names a placeholder that has no value."""


def render(text: str, values: Mapping[str, str], *, name: str = "template") -> str:
    missing = sorted({m for m in _PLACEHOLDER.findall(text) if m not in values})
    if missing:
        raise TemplateError(f"{name}: no value for " + ", ".join(f"@{m}@" for m in missing))
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)
