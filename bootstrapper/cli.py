"""The command line: typer wired to `commands/`, and the one error boundary that maps errors to exit codes.

Heavy modules (httpx, the engine) are imported inside the commands so that `--help` stays fast.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from bootstrapper import __version__
from bootstrapper.commands import (
    agent,
    convert,
    daemon,
    deploy,
    keygen,
    mdm,
    pkg,
    plan,
    run,
    sandbox,
    schema,
    sign,
    status,
    validate,
)
from bootstrapper.commands._options import App
from bootstrapper.errors import BootstrapperError, ExitCode

app = App(
    name="bootstrapper",
    help="Bootstrap freshly enrolled Macs from a manifest: validate, plan, run.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

log = logging.getLogger("bootstrapper")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bootstrapper {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Bootstrap freshly enrolled Macs from a manifest: validate, plan, run."""


app.command()(validate.validate)
app.command()(plan.plan)
app.command()(convert.convert)
app.command()(schema.schema)
app.command()(run.run)
app.command()(status.status)
app.command()(daemon.daemon)
app.command()(agent.agent)
app.command()(keygen.keygen)
app.command()(sign.sign)
app.add_typer(mdm.app, name="mdm")
app.add_typer(deploy.app, name="deploy")
app.add_typer(pkg.app, name="pkg")
app.add_typer(sandbox.app, name="sandbox")


def _crash_log() -> Path | None:
    """Write the traceback of an unexpected error where the user can find it and send it to us."""
    import tempfile

    try:
        fd, name = tempfile.mkstemp(prefix="bootstrapper-crash-", suffix=".log")
        with open(fd, "w", encoding="utf-8") as fh:
            fh.write(traceback.format_exc())
    except OSError:
        return None
    return Path(name)


def main(argv: list[str] | None = None) -> int:
    """The one error boundary: known errors print one line; Ctrl-C is 130; anything else is 3."""
    try:
        # Without standalone mode, click returns the code of a `typer.Exit` instead of raising it.
        code = app(args=argv, prog_name="bootstrapper", standalone_mode=False)
    except BootstrapperError as exc:
        typer.echo(f"error: {exc}", err=True)
        return int(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        return _interrupted(argv)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.TyperException as exc:
        show = getattr(exc, "show", None)
        if callable(show):
            show(file=sys.stderr)
        else:
            typer.echo(f"error: {exc.format_message()}", err=True)
        return int(getattr(exc, "exit_code", ExitCode.USAGE)) or int(ExitCode.USAGE)
    except Exception as exc:
        # Only into a log someone configured: with no handler, logging's last resort would print the
        # traceback on the screen, which the crash log is for.
        if log.hasHandlers():
            log.exception("unexpected error")
        where = _crash_log()
        hint = f"; details in {where}" if where else ""
        typer.echo(f"unexpected error: {type(exc).__name__}: {exc}{hint}", err=True)
        return int(ExitCode.UNEXPECTED)
    if code == ExitCode.INTERRUPTED:  # typer turns Ctrl-C into this code before it reaches us
        return _interrupted(argv)
    return code if isinstance(code, int) else int(ExitCode.OK)


def _interrupted(argv: list[str] | None) -> int:
    """One line for Ctrl-C; a bootstrap keeps its state file, so running it again resumes it."""
    args = sys.argv[1:] if argv is None else argv
    resumable = bool(args) and args[0] in ("run", "daemon")
    typer.echo("interrupted; run again to resume" if resumable else "interrupted", err=True)
    return int(ExitCode.INTERRUPTED)
