"""The command line: parse, build objects, call one function, map errors to exit codes.

Heavy modules (httpx, the engine) are imported inside the commands so that `--help` stays fast.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from bootstrapper import __version__
from bootstrapper.errors import BootstrapperError, ExitCode

app = typer.Typer(
    name="bootstrapper",
    help="Bootstrap freshly enrolled Macs from a manifest: validate, plan, run.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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


# --- manifests: validate, plan, convert, schema -------------------------------------------------

AllowHttp = Annotated[
    bool, typer.Option("--allow-http", help="Allow http:// URLs (labs and tests); prints a warning.")
]


@app.command()
def validate(
    manifests: Annotated[list[str], typer.Argument(help="Manifest files or https URLs.", show_default=False)],
    output_format: Annotated[
        str,
        typer.Option("--format", "-f", help="text, json, or github (annotations for GitHub Actions)."),
    ] = "text",
    allow_http: AllowHttp = False,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Also download every item; check size, sha256, package id, version. Exit 2 on a mismatch.",
        ),
    ] = False,
) -> None:
    """Check manifests and report every problem with its line:column. Exit 0 valid, 2 invalid."""
    if output_format not in ("text", "json", "github"):
        fail(f"--format {output_format!r}: expected text, json or github")
    if deep and output_format != "text":
        fail("--deep prints a table: use it with --format text")
    from bootstrapper import validate as v

    code = v.validate(manifests, output_format, allow_http)
    if deep and code == 0:
        from bootstrapper.fetch import FetchOptions
        from bootstrapper.validate_deep import deep_validate

        loaded = [v.read_manifest(ref, allow_http=allow_http).manifest for ref in manifests]
        code = deep_validate(loaded, FetchOptions(allow_http=allow_http))
    raise typer.Exit(code)


@app.command()
def plan(
    manifest: Annotated[str, typer.Argument(help="A manifest file or https URL.", show_default=False)],
    arch: Annotated[
        str | None, typer.Option(help="Rehearse a Mac of this architecture: arm64 or x86_64.")
    ] = None,
    os_version: Annotated[
        str | None, typer.Option("--os-version", help="Rehearse this macOS version.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Rehearse this model identifier, e.g. Mac15,3.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    allow_http: AllowHttp = False,
) -> None:
    """Show the steps a Mac would run, in order, and what would be skipped and why."""
    if arch is not None and arch not in ("arm64", "x86_64"):
        fail(f"--arch {arch!r}: expected arm64 or x86_64")
    from bootstrapper import validate as v

    facts, simulated = v.host_facts(arch, os_version, model)
    raise typer.Exit(v.show_plan(manifest, facts, simulated, as_json, allow_http))


@app.command()
def convert(
    bootstrap_json: Annotated[
        str, typer.Argument(help="InstallApplications' bootstrap.json.", show_default=False)
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of printing.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the output file if it exists.")] = False,
) -> None:
    """Convert an InstallApplications bootstrap.json to the native YAML manifest."""
    from bootstrapper import validate as v

    raise typer.Exit(v.convert(bootstrap_json, output, force))


@app.command()
def schema() -> None:
    """Print the manifest's JSON Schema (for editors and CI)."""
    from bootstrapper.manifest.schema import schema_text

    typer.echo(schema_text(), nl=False)


@app.command()
def agent(
    sandbox: Annotated[
        Path | None,
        typer.Option("--sandbox", help="Use the simulated macOS under this folder; the daemon runs as you."),
    ] = None,
) -> None:
    """Serve the daemon's user steps from this login session (launchd starts it)."""
    from bootstrapper.agent import run_agent

    run_agent(sandbox)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the state as JSON.")] = False,
    sandbox: Annotated[
        Path | None, typer.Option("--sandbox", help="Read the run of the simulated macOS under this folder.")
    ] = None,
) -> None:
    """Show where the bootstrap run is, from its state file. Exit 2 when there is none."""
    from bootstrapper.paths import Paths
    from bootstrapper.progress.status import show_status

    show_status(Paths(root=sandbox or Path("/")), as_json=as_json)


# --- the run: run (foreground, sandbox or dry run), daemon (launchd) ----------------------------


@app.command()
def run(
    manifest: Annotated[
        str | None,
        typer.Option(
            "--manifest", "-m", help="Manifest file or https URL (default: the manifest_url setting)."
        ),
    ] = None,
    sandbox: Annotated[
        Path | None,
        typer.Option("--sandbox", help="Run in a simulated macOS under this folder, without root."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Download nothing, change nothing: print this Mac's plan.")
    ] = False,
    allow_http: AllowHttp = False,
    arch: Annotated[str | None, typer.Option(help="Sandbox only: pretend to be arm64 or x86_64.")] = None,
    os_version: Annotated[
        str | None, typer.Option("--os-version", help="Sandbox only: pretend macOS version.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Sandbox only: pretend model identifier.")] = None,
) -> None:
    """Run the bootstrap in the foreground, with progress bars and a summary (exit 0 done, 1 failed)."""
    import os

    from bootstrapper import daemon

    if sandbox is None and (arch or os_version or model):
        fail("--arch, --os-version and --model rehearse another Mac: use them with --sandbox")
    code = daemon.run_command(
        manifest,
        sandbox=sandbox,
        dry_run=dry_run,
        allow_http=allow_http,
        facts={"arch": arch, "os_version": os_version, "model": model},
        env=dict(os.environ),
        interactive=True,
    )
    raise typer.Exit(code)


@app.command(name="daemon")
def daemon_command() -> None:
    """What the LaunchDaemon runs: settings from the config plist and managed preferences."""
    import os

    from bootstrapper import daemon

    raise typer.Exit(daemon.run_command(None, env=dict(os.environ), interactive=False))


# --- deployment: the MDM command and its app manifest, the settings profile (docs/deployment.md) --

mdm_app = typer.Typer(
    help="InstallEnterpriseApplication: the app manifest and the MDM command for a product archive.",
    no_args_is_help=True,
)
app.add_typer(mdm_app, name="mdm")
deploy_app = typer.Typer(help="Generate what ships beside the package: settings profile, Jamf schema.")
app.add_typer(deploy_app, name="deploy")

PkgArg = Annotated[Path, typer.Argument(help="A product archive (.pkg).", show_default=False)]
PkgURL = Annotated[str, typer.Option("--url", help="The https URL the Mac downloads the package from.")]


@mdm_app.command("manifest")
def mdm_manifest(
    pkg: PkgArg,
    url: PkgURL,
    output_format: Annotated[str, typer.Option("--format", "-f", help="plist or json.")] = "plist",
) -> None:
    """Print the app manifest (items → assets, metadata) to host beside the package."""
    if output_format not in ("plist", "json"):
        fail(f"--format {output_format!r}: expected plist or json")
    from bootstrapper import mdm

    mdm.show_manifest(pkg, url, output_format)


@mdm_app.command("command")
def mdm_command(
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
) -> None:
    """Print the InstallEnterpriseApplication command plist for NanoMDM-style servers."""
    from bootstrapper import mdm

    mdm.show_command(pkg, url, manifest_url, pin_cert or [], require_revocation_check, command_uuid)


@deploy_app.command("profile")
def deploy_profile(
    assignments: Annotated[
        list[str] | None,
        typer.Option("--set", help="key=value (headers.NAME=value for headers); repeat for more."),
    ] = None,
    identifier: Annotated[
        str, typer.Option(help="The profile's PayloadIdentifier.")
    ] = "org.bootstrapper.profile",
    organization: Annotated[str, typer.Option(help="PayloadOrganization shown to users.")] = "",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of printing.")
    ] = None,
) -> None:
    """Print a .mobileconfig that sets bootstrapper's managed preferences (type-checked)."""
    from bootstrapper.deploy.profile import show_profile

    show_profile(assignments or [], identifier, organization, output)


@deploy_app.command("jamf-schema")
def deploy_jamf_schema() -> None:
    """Print the JSON schema for Jamf Pro's Application & Custom Settings."""
    from bootstrapper.deploy.profile import jamf_schema_text

    typer.echo(jamf_schema_text(), nl=False)


# --- pkg: read flat packages (owner: flatpkg) --------------------------------------------------

pkg_app = typer.Typer(help="Read macOS flat packages (.pkg): facts, signatures, payload files.")
app.add_typer(pkg_app, name="pkg")


@pkg_app.command("info")
def pkg_info(
    file: Annotated[Path, typer.Argument(help="The .pkg file (component or product archive).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the facts as JSON.")] = False,
) -> None:
    """Show a package's identifiers, versions, install location, scripts and signature."""
    import json

    from bootstrapper.flatpkg import read_package
    from bootstrapper.flatpkg.report import facts_json, facts_text

    facts = read_package(file)
    typer.echo(json.dumps(facts_json(facts), indent=2) if as_json else facts_text(facts))


@pkg_app.command("files")
def pkg_files(file: Annotated[Path, typer.Argument(help="The .pkg file.")]) -> None:
    """List the paths a package's payload installs (like `pkgutil --payload-files`)."""
    from bootstrapper.flatpkg.report import payload_files

    for line in payload_files(file):
        typer.echo(line)


def fail(message: str, code: ExitCode = ExitCode.USAGE) -> NoReturn:
    """Print one error line and exit: for bad input detected in the CLI layer itself."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(int(code))


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
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return int(ExitCode.INTERRUPTED)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        typer.echo("interrupted", err=True)
        return int(ExitCode.INTERRUPTED)
    except typer.TyperException as exc:
        show = getattr(exc, "show", None)
        if callable(show):
            show(file=sys.stderr)
        else:
            typer.echo(f"error: {exc.format_message()}", err=True)
        return int(getattr(exc, "exit_code", ExitCode.USAGE)) or int(ExitCode.USAGE)
    except Exception as exc:
        log.exception("unexpected error")
        where = _crash_log()
        hint = f"; details in {where}" if where else ""
        typer.echo(f"unexpected error: {type(exc).__name__}: {exc}{hint}", err=True)
        return int(ExitCode.UNEXPECTED)
    return code if isinstance(code, int) else int(ExitCode.OK)
