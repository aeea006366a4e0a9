"""userfile: placed for the console user, with the user's owner set before anyone can reach it.

The download waits in root's private staging folder (`download_dest`), not at the item's path: the
user is known only when the step runs, and root never writes into a place and then chowns it by path
(a user who swapped in a link meanwhile would be handed the link's target). `safefile.place_staged`
gives the file its owner and mode on its descriptor and renames it into place through folders that
are root's or that user's; a symlinked folder on the way is refused, not followed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path, PurePosixPath

from bootstrapper.engine.context import RunContext
from bootstrapper.engine.kinds.base import Outcome
from bootstrapper.errors import UnsafePathError
from bootstrapper.manifest.kinds import SPECS
from bootstrapper.manifest.model import Item
from bootstrapper.safefile import place_staged


class UserFile:
    def download_dest(self, item: Item, ctx: RunContext) -> Path:
        """Where the verified download waits for the step: root's 0700 staging folder."""
        assert item.file is not None and item.hash is not None
        name = PurePosixPath(item.file).name[:100]  # the prefix must not push it past NAME_MAX
        return ctx.paths.staging_dir / f"userfile-{item.stage.value}-{item.index}-{item.hash[:16]}-{name}"

    async def run(self, item: Item, file: Path | None, ctx: RunContext) -> Outcome:
        """Hand the file to the console user (re-read now: a later login or user switch is followed)."""
        assert file is not None and item.file is not None
        user = await ctx.agents.console_user()
        try:
            await asyncio.to_thread(
                place_staged,
                file,
                ctx.host_path(item.file),
                owner=(user.uid, user.gid),
                mode=SPECS[item.type].mode,
                sha256=item.hash,
            )
        except UnsafePathError as exc:
            return Outcome.failed(str(exc))
        return Outcome.done(f"placed at {item.file} for {user.name}")


RUNNER = UserFile()
