"""The live answers to path and script conditions on this machine.

Conditions that depend on the machine are decided when their step is reached, as InstallApplications
does per item: a `skip_if: {path_exists: X}` after the step that creates X must see X.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from bootstrapper import process
from bootstrapper.manifest.conditions import Probe, item_condition_scripts
from bootstrapper.manifest.model import Item
from bootstrapper.paths import Paths

#: A condition script may take this long before it counts as "does not hold".
CONDITION_TIMEOUT = 60.0


@runtime_checkable
class StepProbe(Probe, Protocol):
    """A probe that can look again right before a step (its scripts run then, not up front)."""

    async def refresh(self, item: Item) -> None: ...


class LiveProbe:
    """Paths are looked at when asked; an item's condition scripts run when `refresh` is called."""

    def __init__(self, paths: Paths, env: dict[str, str]) -> None:
        self._paths = paths
        self._env = env
        self._scripts: dict[str, bool] = {}

    async def refresh(self, item: Item) -> None:
        for source in item_condition_scripts(item):
            result = await process.run(["/bin/sh", "-c", source], timeout=CONDITION_TIMEOUT, env=self._env)
            self._scripts[source] = result.ok

    def path_exists(self, path: str) -> bool | None:
        return self._paths.system(path).exists()

    def script_succeeds(self, source: str) -> bool | None:
        return self._scripts.get(source)
