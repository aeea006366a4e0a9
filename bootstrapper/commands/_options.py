"""Options that several commands share, declared once so their help reads the same everywhere."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand


class PlainUsageCommand(TyperCommand):
    """Usage lines as admins read them elsewhere (`MANIFEST...`): Typer braces required arguments
    (`{MANIFEST...}`), which reads like a placeholder nobody filled in."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:  # Typer's own (vendored) click Context
        return [_unbrace(piece) for piece in super().collect_usage_pieces(ctx)]


def _unbrace(piece: str) -> str:
    return piece[1:-1] if piece.startswith("{") and piece.endswith("}") else piece


class App(typer.Typer):
    """A Typer whose commands default to `PlainUsageCommand`: every command, one usage style."""

    def command(  # type: ignore[override]
        self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return super().command(name, cls=cls or PlainUsageCommand, **kwargs)


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
