"""userfile: placed like a root file, then handed to the console user."""

from __future__ import annotations

import os
from pathlib import Path

from bootstrapper.engine.context import RunContext
from bootstrapper.engine.kinds.base import Outcome
from bootstrapper.manifest.model import Item


class UserFile:
    async def run(self, item: Item, file: Path | None, ctx: RunContext) -> Outcome:
        """Hand the file to the console user (re-read now: a later login or user switch is followed)."""
        assert file is not None
        user = await ctx.agents.console_user()
        try:
            if os.lstat(file).st_uid != user.uid:
                os.lchown(file, user.uid, user.gid)
        except OSError as exc:
            return Outcome.failed(f"cannot give {item.file} to {user.name}: {exc.strerror}")
        return Outcome.done(f"placed at {item.file} for {user.name}")


RUNNER = UserFile()
