"""Options that several commands share, declared once so their help reads the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

AllowHttp = Annotated[
    bool, typer.Option("--allow-http", help="Allow http:// URLs (labs and tests); prints a warning.")
]

Sandbox = Annotated[
    Path | None,
    typer.Option("--sandbox", metavar="DIR", help="Use the simulated macOS under this folder, without root."),
]

PublicKeys = Annotated[
    list[str] | None,
    typer.Option(
        "--public-key",
        metavar="KEY",
        help="Require a manifest signed by this minisign public key (the base64 line of minisign.pub); "
        "repeatable; replaces manifest_public_keys.",
        show_default=False,
    ),
]

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def count(n: int, word: str) -> str:
    """`1 item`, `2 items`: counts in messages read as English."""
    return f"{n} {word}" + ("" if n == 1 else "s")
