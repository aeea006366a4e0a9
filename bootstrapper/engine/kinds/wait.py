"""wait: until a path exists (an app the MDM or VPP delivers), or the item's timeout passes."""

from __future__ import annotations

import time
from pathlib import Path

from bootstrapper.engine.context import RunContext
from bootstrapper.engine.kinds.base import Outcome
from bootstrapper.manifest.model import Item

#: Seconds between looks; a stat a second costs nothing measurable.
POLL = 1.0


class Wait:
    async def run(self, item: Item, file: Path | None, ctx: RunContext) -> Outcome:
        assert item.path is not None
        target = ctx.host_path(item.path)
        timeout = item.timeout or 0.0
        started = time.monotonic()
        while True:
            if target.exists():
                return Outcome.done(f"{item.path} is there after {time.monotonic() - started:.0f} s")
            if time.monotonic() - started >= timeout:
                return Outcome.failed(f"{item.path} did not appear within {timeout:g} s")
            await ctx.sleep(min(POLL, max(timeout - (time.monotonic() - started), 0.01)))


RUNNER = Wait()
