"""Counts in English for people reading the console, the logs and the webhook: `1 item`, `2 items`."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """`count(1, "item")` is `1 item`; `count(0, "item")` is `0 items` (`plural` for irregular nouns)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
