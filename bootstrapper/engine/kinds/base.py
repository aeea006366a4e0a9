"""One Protocol for every item kind: each kind is a module that knows how to carry out one item."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from bootstrapper.engine.context import RunContext
from bootstrapper.manifest.model import Item, Kind

#: What failed: the bytes (download, verification) or the execution (script, install, wait).
FailureKind = Literal["download", "execution"]


@dataclass(frozen=True)
class Outcome:
    ok: bool
    reason: str = ""
    exit_code: int | None = None
    #: Set when `ok` is False.
    failure: FailureKind | None = None

    @classmethod
    def done(cls, reason: str = "", exit_code: int | None = None) -> Outcome:
        return cls(True, reason, exit_code)

    @classmethod
    def failed(cls, reason: str, exit_code: int | None = None, failure: FailureKind = "execution") -> Outcome:
        return cls(False, reason, exit_code, failure)


class ItemKind(Protocol):
    kind: Kind
    #: Mode the downloaded file is placed with.
    mode: int

    async def run(self, item: Item, file: Path | None, ctx: RunContext) -> Outcome:
        """Carry out the item; `file` is the verified download (None for kinds that download nothing).

        Expected failures are returned as a failed Outcome; only bugs raise.
        """
        ...
