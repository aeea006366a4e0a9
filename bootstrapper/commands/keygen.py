"""`bootstrapper keygen`: a minisign key pair for signing manifests (run it offline, never on a Mac)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from bootstrapper.errors import UsageError

#: scrypt cost of an encrypted key: minisign's own default (1 GiB), so our files match its files.
KDF_LIMITS: tuple[int, int] | None = None

PasswordFile = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        metavar="FILE",
        help="Read the key's password from the first line of FILE (- for stdin), e.g. in CI.",
        show_default=False,
    ),
]


def keygen(
    public: Annotated[
        Path, typer.Option("--public", "-p", metavar="PUB", help="Where to write the public key.")
    ] = Path("minisign.pub"),
    secret: Annotated[
        Path, typer.Option("--secret", "-s", metavar="SEC", help="Where to write the secret key (mode 600).")
    ] = Path("minisign.key"),
    no_password: Annotated[
        bool,
        typer.Option(
            "--no-password", "-W", help="Store the secret key unencrypted (only inside a secrets store)."
        ),
    ] = False,
    password_file: PasswordFile = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing key files.")] = False,
) -> None:
    """Make a minisign key pair to sign manifests with; put the public key in manifest_public_keys."""
    from bootstrapper.manifest import signing

    if no_password and password_file is not None:
        raise UsageError("--no-password and --password-file contradict each other; give one")
    if public.resolve() == secret.resolve():
        raise UsageError(f"-p and -s are both {public}; give two different files")
    if not force:
        for path in (public, secret):
            if path.exists():
                raise UsageError(f"{path}: already exists; pass --force to replace it (its key is lost)")
    password = None if no_password else read_password(password_file, confirm=True)
    limits = KDF_LIMITS or (signing.OPSLIMIT_SENSITIVE, signing.MEMLIMIT_SENSITIVE)
    pub_text, sec_text = signing.generate_keypair(password=password, opslimit=limits[0], memlimit=limits[1])
    _write(secret, sec_text, 0o600, force)
    _write(public, pub_text, 0o644, force)
    key_line = pub_text.splitlines()[1]
    key_id = pub_text.splitlines()[0].rsplit(" ", 1)[-1]
    typer.echo(f"wrote {secret} (secret; keep it offline) and {public} (key {key_id})")
    typer.echo(f"put this in manifest_public_keys: {key_line}")


def read_password(password_file: Path | None, *, confirm: bool) -> str:
    """The password from `--password-file` (first line; - is stdin), else asked on the terminal."""
    import sys

    if password_file is not None:
        shown = "stdin" if str(password_file) == "-" else str(password_file)
        try:
            text = sys.stdin.read() if str(password_file) == "-" else password_file.read_text()
        except OSError as exc:
            raise UsageError(f"--password-file {shown}: cannot read it ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise UsageError(f"--password-file {shown}: not UTF-8 text; save the password as text") from None
        password = text.split("\n", 1)[0].removesuffix("\r")
        if not password:
            raise UsageError(f"--password-file {shown}: its first line is empty; put the password there")
        return password
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password: pass --password-file FILE (or --no-password)")
    password = typer.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    if not password:
        raise UsageError("the password is empty; give one, or pass --no-password")
    return str(password)


def _write(path: Path, text: str, mode: int, force: bool) -> None:
    """Create `path` with `mode` from the start (a secret key is never readable by others, even briefly)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (0 if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(text)
    except FileExistsError:
        raise UsageError(f"{path}: already exists; pass --force to replace it (its key is lost)") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot write it ({exc.strerror}); check the folder") from None
