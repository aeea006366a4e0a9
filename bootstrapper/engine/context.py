"""What a step needs from the run around it: the platform, the paths, the agents, the event bus."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bootstrapper.config import Config
from bootstrapper.engine.events import EventBus
from bootstrapper.paths import Paths

if TYPE_CHECKING:
    from bootstrapper.engine.agents import AgentGate
    from bootstrapper.manifest.model import Item
    from bootstrapper.platform.base import Platform


@dataclass
class RunContext:
    paths: Paths
    platform: Platform
    config: Config
    bus: EventBus
    agents: AgentGate
    #: The uid that must own what root runs: 0 on a Mac, the daemon's own uid in the sandbox.
    owner_uid: int = 0
    #: Background (`donotwait`) scripts, reaped at the end of the run.
    background: list[asyncio.Task[object]] = field(default_factory=list)
    #: Injected for tests: how long to sleep between polls (wait items, console user).
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def host_path(self, mac_path: str | os.PathLike[str]) -> Path:
        """Where an absolute macOS path lives here (under the sandbox root, or itself on a Mac)."""
        return self.paths.system(os.fspath(mac_path))

    def secrets(self, item: Item) -> dict[str, str] | str:
        """The `script_secrets` values an item names, or why the step is refused (a name the
        settings do not define: the profile that carries the secrets is missing or older)."""
        known = self.config.script_secrets
        missing = [name for name in item.secrets if name not in known]
        if missing:
            return (
                f"refused: secrets {', '.join(missing)} not defined in the script_secrets setting;"
                " add them to the MDM profile or remove them from the item"
            )
        return {name: known[name] for name in item.secrets}

    def script_env(self) -> dict[str, str]:
        """Variables every script we run gets (scripts find the sandbox root through them)."""
        return {
            "BOOTSTRAPPER_ROOT": str(self.paths.root),
            "HOME": str(self.paths.system("/var/root")),
            "USER": "root",
            "LOGNAME": "root",
            "TMPDIR": str(self.paths.system("/private/tmp")),
        }
