"""`bootstrapper mdm manifest|command`: InstallEnterpriseApplication for a product archive."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bootstrapper.commands._options import App
from bootstrapper.errors import UsageError

app = App(
    help="InstallEnterpriseApplication: the app manifest and the MDM command for a product archive.",
    no_args_is_help=True,
)

PkgArg = Annotated[Path, typer.Argument(metavar="PKG", help="A product archive (.pkg).", show_default=False)]
PkgURL = Annotated[str, typer.Option("--url", help="The https URL the Mac downloads the package from.")]
AllowUnsigned = Annotated[
    bool,
    typer.Option(
        "--allow-unsigned", help="Accept an unsigned package (labs only: macOS refuses it from MDM)."
    ),
]


@app.command("manifest")
def manifest(
    pkg: PkgArg,
    url: PkgURL,
    output_format: Annotated[str, typer.Option("--format", "-f", help="plist or json.")] = "plist",
    allow_unsigned: AllowUnsigned = False,
) -> None:
    """Print the app manifest (items → assets, metadata) to host beside the package."""
    if output_format not in ("plist", "json"):
        raise UsageError(f"--format {output_format!r}: expected plist or json")
    from bootstrapper import mdm

    doc, warnings = mdm.build_manifest(pkg, url, allow_unsigned=allow_unsigned)
    _warn(warnings)
    typer.echo(mdm.render(doc, output_format), nl=False)


@app.command("command")
def command(
    pkg: PkgArg,
    url: PkgURL,
    manifest_url: Annotated[
        str | None,
        typer.Option("--manifest-url", help="Point at a hosted manifest instead of embedding it."),
    ] = None,
    pin_cert: Annotated[
        list[Path] | None,
        typer.Option("--pin-cert", help="Pin the --manifest-url connection to this certificate (PEM/DER)."),
    ] = None,
    require_revocation_check: Annotated[
        bool, typer.Option("--require-revocation-check", help="Pinned certificates must pass revocation.")
    ] = False,
    command_uuid: Annotated[
        str | None, typer.Option("--uuid", help="The CommandUUID (default: random).")
    ] = None,
    allow_unsigned: AllowUnsigned = False,
) -> None:
    """Print the InstallEnterpriseApplication command plist for NanoMDM-style servers."""
    from bootstrapper import mdm

    pin_certs = pin_cert or []
    if pin_certs and manifest_url is None:
        raise UsageError("--pin-cert needs --manifest-url: macOS ignores pinning for an inline Manifest")
    if require_revocation_check and not pin_certs:
        raise UsageError("--require-revocation-check needs at least one --pin-cert")
    doc, warnings = mdm.build_manifest(pkg, url, allow_unsigned=allow_unsigned)
    _warn(warnings)
    if manifest_url is not None:
        mdm.check_https(manifest_url, "--manifest-url")
        certs = [mdm.read_certificate(p) for p in pin_certs]
        cmd = mdm.install_command(
            manifest_url=manifest_url,
            pinning_certs=certs,
            revocation_check=require_revocation_check,
            command_uuid=command_uuid,
        )
    else:
        cmd = mdm.install_command(manifest=doc, command_uuid=command_uuid)
    typer.echo(mdm.render(cmd, "plist"), nl=False)


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
