"""The runners: one module per item type, `engine/kinds/<type>.py`, behind the `ItemRunner` Protocol.

Each module defines `RUNNER`; this registry imports it by the type's name for every type that
`manifest.kinds.SPECS` declares, so adding a type is its spec plus its module, and nothing here.
"""

from __future__ import annotations

import importlib

from bootstrapper.engine.kinds.base import ItemRunner
from bootstrapper.manifest.kinds import SPECS, ItemType


def _runner(item_type: ItemType) -> ItemRunner:
    runner: ItemRunner = importlib.import_module(f"{__name__}.{item_type.value}").RUNNER
    return runner


RUNNERS: dict[ItemType, ItemRunner] = {item_type: _runner(item_type) for item_type in SPECS}
