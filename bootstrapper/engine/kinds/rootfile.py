"""rootfile: the verified download is the item; it is in place (root-owned, 0644) when the step runs."""

from __future__ import annotations

from pathlib import Path

from bootstrapper.engine.context import RunContext
from bootstrapper.engine.kinds.base import Outcome
from bootstrapper.manifest.model import Item


class RootFile:
    async def run(self, item: Item, file: Path | None, ctx: RunContext) -> Outcome:
        assert file is not None
        return Outcome.done(f"placed at {item.file}")


RUNNER = RootFile()
