"""One Protocol for every item type's runner: a module that knows how to carry out one item."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from bootstrapper.engine.context import RunContext
from bootstrapper.manifest.model import Item

#: What failed: the bytes (download, verification) or the execution (script, install, wait).
FailureKind = Literal["download", "execution"]


@dataclass(frozen=True)
class Outcome:
    ok: bool
    reason: str = ""
    exit_code: int | None = None
    #: Set when `ok` is False.
    failure: FailureKind | None = None
    #: What the step's program printed (scripts, `installer`), secrets already masked: each stream's
    #: capped tail, for the log and, when the step failed, for the reports (`output_tail`).
    stdout: str = field(default="", repr=False)
    stderr: str = field(default="", repr=False)

    @classmethod
    def done(
        cls, reason: str = "", exit_code: int | None = None, *, stdout: str = "", stderr: str = ""
    ) -> Outcome:
        return cls(True, reason, exit_code, stdout=stdout, stderr=stderr)

    @classmethod
    def failed(
        cls,
        reason: str,
        exit_code: int | None = None,
        failure: FailureKind = "execution",
        *,
        stdout: str = "",
        stderr: str = "",
    ) -> Outcome:
        return cls(False, reason, exit_code, failure, stdout, stderr)


@runtime_checkable
class ItemRunner(Protocol):
    """Carries out the items of one type; what the type may be and do is its `KindSpec`."""

    async def run(self, item: Item, file: Path | None, ctx: RunContext) -> Outcome:
        """Carry out the item; `file` is the verified download (None for types that download nothing).

        Expected failures are returned as a failed Outcome; only bugs raise.
        """
        ...
