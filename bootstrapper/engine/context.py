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

    def script_env(self) -> dict[str, str]:
        """Variables every script we run gets (scripts find the sandbox root through them)."""
        return {
            "BOOTSTRAPPER_ROOT": str(self.paths.root),
            "HOME": str(self.paths.system("/var/root")),
            "USER": "root",
            "LOGNAME": "root",
            "TMPDIR": str(self.paths.system("/private/tmp")),
        }
