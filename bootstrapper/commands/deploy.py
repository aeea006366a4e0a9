"""`bootstrapper deploy profile|jamf-schema`: what ships beside the package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bootstrapper.commands._options import App

app = App(help="Generate what ships beside the package: settings profile, Jamf schema.")


@app.command("profile")
def profile(
    assignments: Annotated[
        list[str] | None,
        typer.Option(
            "--set", metavar="KEY=VALUE", help="key=value (headers.NAME=value for headers); repeat for more."
        ),
    ] = None,
    identifier: Annotated[
        str, typer.Option(metavar="ID", help="The profile's PayloadIdentifier.")
    ] = "org.bootstrapper.profile",
    organization: Annotated[
        str, typer.Option(metavar="NAME", help="PayloadOrganization shown to users.")
    ] = "",
    team_id: Annotated[
        str,
        typer.Option(
            "--team-id",
            metavar="TEAMID",
            help="Your Developer ID team: the Managed Login Items rules then also cover all it signs.",
        ),
    ] = "",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", metavar="FILE", help="Write here instead of printing.")
    ] = None,
) -> None:
    """Print a .mobileconfig that sets bootstrapper's managed preferences (type-checked)."""
    from bootstrapper.atomic import write_atomic
    from bootstrapper.deploy.profile import mobileconfig, parse_assignments

    data = mobileconfig(
        parse_assignments(assignments or []),
        identifier=identifier,
        organization=organization,
        team_id=team_id,
    )
    if output is None:
        typer.echo(data.decode("utf-8"), nl=False)
        return
    write_atomic(output, data, 0o644)
    typer.echo(f"wrote {output}", err=True)


@app.command("jamf-schema")
def jamf_schema() -> None:
    """Print the JSON schema for Jamf Pro's Application & Custom Settings."""
    from bootstrapper.deploy.profile import jamf_schema_text

    typer.echo(jamf_schema_text(), nl=False)
