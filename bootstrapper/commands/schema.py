"""`bootstrapper schema`: the manifest's JSON Schema, for editors and CI."""

from __future__ import annotations

import typer


def schema() -> None:
    """Print the manifest's JSON Schema (for editors and CI)."""
    from bootstrapper.manifest.schema import schema_text

    typer.echo(schema_text(), nl=False)
