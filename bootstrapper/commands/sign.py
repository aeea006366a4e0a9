"""`bootstrapper sign`: write MANIFEST.minisig, with a serial and an expiry the Mac checks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from bootstrapper.commands.keygen import PasswordFile, read_password
from bootstrapper.errors import UsageError


def sign(
    manifest: Annotated[
        Path, typer.Argument(metavar="MANIFEST", help="The manifest file to sign.", show_default=False)
    ],
    secret: Annotated[
        Path, typer.Option("--secret", "-s", metavar="SEC", help="The secret key file (minisign's format).")
    ] = Path("minisign.key"),
    serial: Annotated[
        int | None,
        typer.Option(metavar="N", help="Serial in the signature; Macs refuse one below what they accepted."),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(
            metavar="DATE", help="When the signature stops working: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)."
        ),
    ] = None,
    password_file: PasswordFile = None,
) -> None:
    """Sign MANIFEST with a minisign secret key: writes MANIFEST.minisig beside it."""
    from bootstrapper.engine.source import SIGNATURE_SUFFIX, read_checked
    from bootstrapper.manifest import signing
    from bootstrapper.manifest.signature import format_expires, parse_expires

    if serial is not None and serial < 0:
        raise UsageError(f"--serial {serial}: give a whole number of 0 or more")
    when = None
    if expires is not None:
        when = parse_expires(f"{expires}T00:00:00Z" if len(expires) == 10 else expires)
        if when <= datetime.now(UTC):
            raise UsageError(f"--expires {expires}: already past; give a later date")
    # Refuse to vouch for a manifest no Mac could run; sign exactly the bytes that were checked.
    data = read_checked(str(manifest)).data
    try:
        sec_text = secret.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"-s {secret}: cannot read it ({exc.strerror}); give the file keygen made") from None
    except UnicodeDecodeError:
        raise UsageError(f"-s {secret}: not text; give the file keygen made") from None
    password = read_password(password_file, confirm=False) if signing.is_encrypted(sec_text) else None
    text = signing.sign(data, sec_text, serial=serial, expires=when, password=password)
    out = manifest.with_name(manifest.name + SIGNATURE_SUFFIX)
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{out}: cannot write it ({exc.strerror}); check the folder") from None
    key_id = signing.public_key_text(sec_text, password).splitlines()[0].rsplit(" ", 1)[-1]
    shown = ", ".join(
        part
        for part in (
            f"serial {serial}" if serial is not None else "",
            f"expires {format_expires(when)}" if when else "",
        )
        if part
    )
    details = f"key {key_id}, {shown}" if shown else f"key {key_id}"
    typer.echo(f"wrote {out} ({details}); publish it beside {manifest.name}")
