"""`bootstrapper convert`: an InstallApplications bootstrap.json, file or URL, as the native YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bootstrapper.commands._options import AllowHttp, count
from bootstrapper.errors import ManifestError, UsageError


def convert(
    bootstrap_json: Annotated[
        str,
        typer.Argument(
            metavar="BOOTSTRAP_JSON",
            help="InstallApplications' bootstrap.json: a file or https URL.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", metavar="FILE", help="Write here instead of printing.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the output file if it exists.")] = False,
    allow_http: AllowHttp = False,
) -> None:
    """Convert an InstallApplications bootstrap.json to the native YAML manifest."""
    from bootstrapper.engine.source import read_source
    from bootstrapper.manifest.convert import raw_hashes, to_native
    from bootstrapper.manifest.load import load_bytes
    from bootstrapper.manifest.model import Format

    loaded, data = read_source(bootstrap_json, allow_http=allow_http)
    if loaded.manifest.format is not Format.IA:
        raise UsageError(
            f"{bootstrap_json}: already in the native format; "
            "convert takes an InstallApplications bootstrap.json"
        )
    text, notes = to_native(loaded, raw_hashes(data))
    try:
        load_bytes(text.encode(), str(output or "converted"), local=True, allow_http=True)
        still_invalid: list[str] = []
    except ManifestError as exc:
        still_invalid = exc.problems
    if output is None:
        typer.echo(text, nl=False)
    else:
        if output.exists() and not force:
            raise UsageError(f"{output}: already exists; pass --force to replace it")
        from bootstrapper.atomic import write_atomic

        write_atomic(output, text.encode(), mode=0o644)
        typer.echo(f"wrote {output}", err=True)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    if still_invalid:
        typer.echo(
            f"warning: the converted manifest has {count(len(still_invalid), 'problem')} to fix:", err=True
        )
        for line in still_invalid:
            typer.echo(f"  {line}", err=True)
