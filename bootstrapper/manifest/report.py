"""How the loader reports: every problem at once, one line each, naming the spot and the fix.

`source:line:col: userland[2] "Dock setup" → hash: expected 64 hex digits, got 63`. The text helpers
here show untrusted values safely (control characters replaced, long values cut) and suggest the
nearest known word for a typo.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from bootstrapper.errors import ManifestError
from bootstrapper.manifest.model import Format, Problem, Settings
from bootstrapper.manifest.source import Node
from bootstrapper.text import one_line


@dataclass
class Report:
    source: str
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def error(self, node: Node | None, crumb: str, message: str) -> None:
        self.errors.append(self._problem(node, crumb, message))

    def warn(self, node: Node | None, crumb: str, message: str) -> None:
        self.warnings.append(self._problem(node, crumb, message))

    def field_error(self, node: Node | None, path: str, message: str) -> None:
        """`path` ends with the key: `userland[0] "a" → retries` reports `… → retries: message`."""
        head, _, key = path.rpartition(" → ")
        self.error(node, head, f"{key}: {message}")

    def _problem(self, node: Node | None, crumb: str, message: str) -> Problem:
        line, col = (node.line, node.col) if node is not None else (0, 0)
        text = f"{crumb} → {message}" if crumb else message
        return Problem(self.source, line, col, " ".join(text.splitlines()))

    @staticmethod
    def sort(found: list[Problem]) -> list[Problem]:
        return sorted(found, key=lambda p: (p.line, p.col))

    def failure(self) -> ManifestError:
        errors = self.sort(self.errors)
        err = ManifestError([str(p) for p in errors], self.source, errors)
        err.warnings = self.sort(self.warnings)
        return err


@dataclass
class Context:
    """What reading one manifest needs to know beyond the node at hand."""

    report: Report
    fmt: Format
    #: The manifest's own URL, which relative item URLs resolve against.
    location: str | None
    #: Read from this machine: only then are file:// items allowed.
    local: bool
    allow_http: bool
    settings: Settings = field(default_factory=Settings)
    #: InstallApplications files kept outside INSTALL_DIR: one warning lists them.
    outside_install_dir: list[str] = field(default_factory=list)
    #: Each item's name node by item id (`userland[2]`), for the position of a repeated name.
    names: dict[str, Node] = field(default_factory=dict)

    @property
    def native(self) -> bool:
        return self.fmt is Format.NATIVE

    def strict(self, node: Node | None, crumb: str, message: str) -> None:
        """An error in the native format, a warning in InstallApplications' (which runs it anyway)."""
        if self.native:
            self.report.error(node, crumb, message)
        else:
            self.report.warn(node, crumb, message)

    def unknown(self, key: str, key_node: Node, crumb: str, known: list[str], *, what: str) -> None:
        """A key nobody defined, or one that only the native format reads."""
        key = cut(key)
        if key in known:
            self.report.warn(
                key_node, crumb, f"{key}: a native-format key; ignored in an InstallApplications manifest"
            )
        elif self.native:
            self.report.error(key_node, crumb, f"{key}: unknown {what}{suggest(key, known)}")
        else:
            self.report.warn(key_node, crumb, f"{key}: unknown {what}, ignored{suggest(key, known)}")


def suggest(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def choices(values: list[str]) -> str:
    return ", ".join(values)


def show(value: Any) -> str:
    """A value quoted for a message: control characters escaped, cut at 80 characters."""
    if isinstance(value, list | dict):  # parsed nodes inside: their repr is no message
        return "a list" if isinstance(value, list) else "a mapping"
    # repr escapes what `one_line` escapes, in the same spelling, and quotes the value
    text = value if isinstance(value, str) else repr(value)
    return repr(text if len(text) <= 80 else text[:77] + "...")


def cut(text: str, limit: int = 80) -> str:
    """`text` as one line of at most `limit` characters: a 1 MB value is not echoed whole."""
    return one_line(text, limit)


def describe(node: Node) -> str:
    """What was found instead of what was expected: `5 (a number)`, `a list`."""
    value = node.value
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int | float):
        return f"{cut((node.raw or str(value)) if isinstance(value, float) else str(value))} (a number)"
    if isinstance(value, str):
        return f"{show(value)} (a text)"
    kinds: dict[type, str] = {list: "a list", dict: "a mapping"}
    return kinds.get(type(value), type(value).__name__)
