"""`bootstrapper run`: the bootstrap in the foreground (a Mac as root, a sandbox, or a dry run)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from bootstrapper.commands._options import AllowHttp, PublicKeys
from bootstrapper.errors import UsageError


def run(
    manifest: Annotated[
        str | None,
        typer.Option(
            "--manifest",
            "-m",
            metavar="MANIFEST",
            help="Manifest file or https URL (default: the manifest_url setting).",
        ),
    ] = None,
    sandbox: Annotated[
        Path | None,
        typer.Option(
            "--sandbox", metavar="DIR", help="Run in a simulated macOS under this folder, without root."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Download nothing, change nothing: print this Mac's plan.")
    ] = False,
    allow_http: AllowHttp = False,
    public_keys: PublicKeys = None,
    arch: Annotated[
        str | None, typer.Option(metavar="ARCH", help="Sandbox only: pretend to be arm64 or x86_64.")
    ] = None,
    os_version: Annotated[
        str | None,
        typer.Option("--os-version", metavar="VERSION", help="Sandbox only: pretend macOS version."),
    ] = None,
    model: Annotated[
        str | None, typer.Option(metavar="MODEL", help="Sandbox only: pretend model identifier.")
    ] = None,
) -> None:
    """Run the bootstrap in the foreground, with progress bars and a summary (exit 0 done, 1 failed)."""
    import asyncio

    from bootstrapper import daemon

    if sandbox is None and (arch or os_version or model):
        raise UsageError("--arch, --os-version and --model rehearse another Mac: use them with --sandbox")
    setup = daemon.setup(
        manifest,
        sandbox=sandbox,
        dry_run=dry_run,
        allow_http=allow_http,
        public_keys=public_keys,
        facts={"arch": arch, "os_version": os_version, "model": model},
        env=dict(os.environ),
        interactive=True,
    )
    if dry_run:
        from bootstrapper.commands.plan import render_plan

        loaded, steps, facts = asyncio.run(daemon.dry_run_plan(setup))
        render_plan(loaded, steps, facts, note=" (this machine; dry run: nothing downloaded or changed)")
        raise typer.Exit(0)
    raise typer.Exit(daemon.start(setup, interactive=True))
