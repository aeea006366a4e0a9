"""`bootstrapper daemon`: what the LaunchDaemon runs, with no options (settings come from the Mac)."""

from __future__ import annotations

import os

import typer


def daemon() -> None:
    """What the LaunchDaemon runs: settings from the config plist and managed preferences."""
    from bootstrapper import daemon as job

    setup = job.setup(None, env=dict(os.environ), interactive=False)
    raise typer.Exit(job.start(setup, interactive=False))
