"""Shared by the two script kinds: the default timeout and how a failure is summed up."""

from __future__ import annotations

#: A script with no `timeout` of its own may run this long.
DEFAULT_SCRIPT_TIMEOUT = 3600.0


def tail_line(tail: str) -> str:
    """The last non-empty line of a script's output: what a one-line reason shows."""
    lines = [line for line in tail.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""
