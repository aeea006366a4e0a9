"""`bootstrapper agent`: what the LaunchAgent runs in each login session."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def agent(
    sandbox: Annotated[
        Path | None,
        typer.Option(
            "--sandbox",
            metavar="DIR",
            help="Use the simulated macOS under this folder; the daemon runs as you.",
        ),
    ] = None,
) -> None:
    """Serve the daemon's user steps from this login session (launchd starts it)."""
    from bootstrapper.agent import run_agent

    run_agent(sandbox)
