"""The runners: one module per item type, `engine/kinds/<type>.py`, behind the `ItemRunner` Protocol.

Each module defines `RUNNER`; this registry imports it by the type's name for every type that
`manifest.kinds.SPECS` declares, so adding a type is its spec plus its module, and nothing here.
A runner that places its file itself (a user file) also says where its download waits, with
`download_dest`; every other download goes straight to the item's `file`.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from bootstrapper.engine.context import RunContext
from bootstrapper.engine.kinds.base import ItemRunner
from bootstrapper.errors import UnsafePathError
from bootstrapper.manifest.kinds import SPECS, ItemType
from bootstrapper.manifest.model import Item
from bootstrapper.safefile import open_verified


def _runner(item_type: ItemType) -> ItemRunner:
    runner: ItemRunner = importlib.import_module(f"{__name__}.{item_type.value}").RUNNER
    return runner


RUNNERS: dict[ItemType, ItemRunner] = {item_type: _runner(item_type) for item_type in SPECS}


def on_disk(item: Item, ctx: RunContext) -> Path:
    """The file of an item with no `url` (a script an earlier package put on the Mac), once it is
    known to hold the item's bytes and to be changeable by nobody but root: `safefile.open_verified`
    walks every folder on descriptors and hashes the file it opened. Raises `UnsafePathError`."""
    assert item.file is not None and item.hash is not None
    path = ctx.host_path(item.file)
    if not os.path.lexists(path):
        raise UnsafePathError(
            path, "does not exist; the item has no url, so an earlier package must put it there"
        )
    os.close(open_verified(path, item.hash, owner=ctx.owner_uid))
    return path


def download_dest(item: Item, ctx: RunContext) -> Path:
    """Where the downloader puts the item's verified file."""
    where = getattr(RUNNERS[item.type], "download_dest", None)
    if where is not None:
        dest: Path = where(item, ctx)
        return dest
    assert item.file is not None
    return ctx.host_path(item.file)
