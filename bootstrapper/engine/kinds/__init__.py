"""The runners: one module per item type, `engine/kinds/<type>.py`, behind the `ItemRunner` Protocol.

Each module defines `RUNNER`; this registry imports it by the type's name for every type that
`manifest.kinds.SPECS` declares, so adding a type is its spec plus its module, and nothing here.
A runner that places its file itself (a user file) also says where its download waits, with
`download_dest`; every other download goes straight to the item's `file`.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from bootstrapper.engine.context import RunContext
from bootstrapper.engine.kinds.base import ItemRunner
from bootstrapper.manifest.kinds import SPECS, ItemType
from bootstrapper.manifest.model import Item


def _runner(item_type: ItemType) -> ItemRunner:
    runner: ItemRunner = importlib.import_module(f"{__name__}.{item_type.value}").RUNNER
    return runner


RUNNERS: dict[ItemType, ItemRunner] = {item_type: _runner(item_type) for item_type in SPECS}


def download_dest(item: Item, ctx: RunContext) -> Path:
    """Where the downloader puts the item's verified file."""
    where = getattr(RUNNERS[item.type], "download_dest", None)
    if where is not None:
        dest: Path = where(item, ctx)
        return dest
    assert item.file is not None
    return ctx.host_path(item.file)
