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
    if output is not None and output.exists() and not force:
        raise UsageError(f"{output}: already exists; pass --force to replace it")
    text, notes = to_native(loaded, raw_hashes(data))
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    try:
        load_bytes(text.encode(), str(output or "converted"), local=True, allow_http=True)
    except ManifestError as exc:
        # Nothing is written: a file that does not validate would only fail later, on a Mac.
        for problem in exc.details:
            typer.echo(f"  {problem.message}", err=True)
        raise UsageError(
            f"{bootstrap_json}: the converted manifest would have {count(len(exc.details), 'problem')} "
            "(listed above); fix them in the bootstrap.json and convert again"
        ) from None
    if output is None:
        typer.echo(text, nl=False)
        return
    from bootstrapper.atomic import write_atomic

    try:
        write_atomic(output, text.encode(), mode=0o644)
    except OSError as exc:
        raise UsageError(f"{output}: cannot write it ({exc.strerror or exc}); choose another path") from None
    typer.echo(f"wrote {output}", err=True)
