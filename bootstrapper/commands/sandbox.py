"""`bootstrapper sandbox …`: a simulated Mac on this machine, with a real launchd and login sessions.

`install` puts our package into a folder the way the MDM puts it on a Mac, `boot` runs that Mac's
launchd in the foreground, `login|logout|switch|reboot|shutdown` act on it from another terminal, and
`launchctl` and `ps` look inside. See docs/platforms.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import plistlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bootstrapper.commands._options import AllowHttp, App, AsJson
from bootstrapper.errors import CommandError, PlatformError, UsageError

if TYPE_CHECKING:
    from bootstrapper.platform.sandbox.launchd import Reply

app = App(help="A simulated Mac in a folder: install, boot, log users in and out, launchctl.")

Folder = Annotated[
    Path,
    typer.Argument(metavar="DIR", help="The sandbox folder (the simulated Mac's /).", show_default=False),
]
User = Annotated[
    str,
    typer.Argument(
        metavar="USER", help="A short user name (alice, bob…); uids start at 501.", show_default=False
    ),
]


def _existing(folder: Path) -> Path:
    if not folder.is_dir():
        raise UsageError(
            f"no sandbox at {folder}: create one with `bootstrapper sandbox install {folder} --manifest URL`"
        )
    return folder.resolve()


def _ask(folder: Path, message: dict[str, Any]) -> Reply:
    from bootstrapper.platform.sandbox.control import request
    from bootstrapper.platform.sandbox.launchd import SandboxStateError

    root = _existing(folder)
    try:
        return request(root, message)
    except SandboxStateError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise PlatformError(f"cannot use the sandbox at {root}: {exc.strerror or exc}") from None


def _finish(reply: Reply) -> None:
    if reply.out:
        typer.echo(reply.out, nl=False)
    if reply.err:
        typer.echo(reply.err, nl=False, err=True)
    raise typer.Exit(reply.rc)


def _check_manifest(url: str, allow_http: bool) -> str:
    if url.startswith("https://") or (url.startswith("http://") and allow_http):
        return url
    if url.startswith("http://"):
        raise UsageError(f"--manifest {url}: http:// needs --allow-http (labs and tests only)")
    if url.startswith("/") and Path(url).is_file():
        return url
    raise UsageError(f"--manifest {url!r}: give an https:// URL or the absolute path of a manifest file")


@app.command()
def install(
    folder: Folder,
    manifest: Annotated[
        str, typer.Option("--manifest", help="The manifest URL the managed preferences point at.")
    ],
    allow_http: AllowHttp = False,
    runtime: Annotated[
        Path | None,
        typer.Option(
            "--runtime",
            metavar="PYTHON",
            help="The Python, with bootstrapper installed, that launchd runs the daemon and agents with "
            "(default: this one). As root, agents run as their user: give one every uid can run.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Install bootstrapper into the sandbox as the MDM would: payload, receipt, settings, postinstall."""
    url = _check_manifest(manifest, allow_http)
    python = _check_runtime(runtime) if runtime is not None else None
    folder.mkdir(parents=True, exist_ok=True)
    _record_runtime(folder.resolve(), python)
    loaded = asyncio.run(_install(folder.resolve(), url, allow_http))
    typer.echo(f"installed into {folder}; {loaded}")


def _check_runtime(python: Path) -> Path:
    """An interpreter that runs and imports bootstrapper, so a bad path fails here and not at boot."""
    from bootstrapper.process import run_sync

    if not python.is_absolute() or not python.is_file() or not os.access(python, os.X_OK):
        raise UsageError(
            f"--runtime {python}: not an executable file; give the absolute path of a Python "
            "that has bootstrapper installed"
        )
    try:
        check = run_sync([str(python), "-c", "import bootstrapper"], timeout=60.0)
    except (OSError, CommandError) as exc:
        raise UsageError(f"--runtime {python}: cannot run it ({exc}); give a working Python") from None
    if not check.ok:
        raise UsageError(
            f"--runtime {python}: cannot import bootstrapper; install bootstrapper into that Python"
        )
    return python


def _record_runtime(root: Path, python: Path | None) -> None:
    from bootstrapper.platform.sandbox.launchd import runtime_file

    file = runtime_file(root)
    if python is None:
        file.unlink(missing_ok=True)
        return
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(f"{python}\n", encoding="utf-8")


async def _install(root: Path, url: str, allow_http: bool) -> str:
    from bootstrapper import __version__
    from bootstrapper.atomic import write_atomic
    from bootstrapper.deploy.launchd import agent_plist, daemon_plist, dumps
    from bootstrapper.paths import PACKAGE_ID, Paths
    from bootstrapper.platform.sandbox import SandboxPlatform

    paths = Paths(root=root)
    platform = SandboxPlatform(paths)
    files = {
        str(paths.launch_daemon_plist.relative_to(root)): dumps(daemon_plist()),
        str(paths.launch_agent_plist.relative_to(root)): dumps(agent_plist()),
        "Library/bootstrapper/README": b"bootstrapper's install folder; removed when the run ends.\n",
    }
    await platform.install_files(PACKAGE_ID, __version__, files)
    await asyncio.to_thread(_at_login_window, root)
    prefs: dict[str, Any] = {"manifest_url": url}
    if allow_http:
        prefs["allow_http"] = True
    paths.managed_prefs.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(paths.managed_prefs, plistlib.dumps(prefs), mode=0o644)
    return await _postinstall(platform)


async def _postinstall(platform: Any) -> str:
    """What pkg/scripts/postinstall.in does, call for call, through the sandbox's launchctl."""
    from bootstrapper.platform.base import gui_domain

    paths = platform.paths
    launchd = platform.launchd
    await launchd.bootout("system", paths.daemon_label)
    user = await platform.console_user()
    if user is not None and user.uid == 0:
        user = None  # root on the console is nobody, as the script's console_uid says
    if user is not None:
        await launchd.bootout(gui_domain(user.uid), paths.agent_label)
    await launchd.enable("system", paths.daemon_label)
    await launchd.bootstrap("system", paths.launch_daemon_plist)
    if user is None:
        return f"{paths.daemon_label} loaded; {paths.agent_label} starts at the next login"
    await launchd.enable(gui_domain(user.uid), paths.agent_label)
    await launchd.bootstrap(gui_domain(user.uid), paths.launch_agent_plist)
    return f"{paths.daemon_label} loaded; {paths.agent_label} loaded for {user.name}"


def _at_login_window(root: Path) -> None:
    """An installed sandbox has login sessions: until somebody logs in, the login window has the console."""
    from bootstrapper.platform.sandbox.control import request

    request(root, {"op": "console"})


@app.command()
def boot(folder: Folder) -> None:
    """Boot the sandbox in the foreground: daemons, then logged-in users' agents. Ctrl-C shuts down."""
    from bootstrapper.platform.sandbox.control import serve
    from bootstrapper.platform.sandbox.launchd import SandboxStateError

    root = _existing(folder)
    try:
        code = asyncio.run(serve(root, note=typer.echo))
    except SandboxStateError as exc:
        raise UsageError(str(exc)) from None
    raise typer.Exit(code)


def _note_identity(name: str) -> None:
    if os.geteuid() != 0:
        typer.echo(f"note: not running as root: {name}'s processes run as you (uid {os.getuid()})", err=True)


@app.command()
def login(folder: Folder, user: User) -> None:
    """Log USER in and give them the console; their LaunchAgents start in gui/<uid>."""
    _note_identity(user)
    _finish(_ask(folder, {"op": "login", "user": user}))


@app.command()
def switch(folder: Folder, user: User) -> None:
    """Fast user switching: USER gets the console; the other sessions stay alive."""
    _note_identity(user)
    _finish(_ask(folder, {"op": "switch", "user": user}))


@app.command()
def logout(folder: Folder, user: User) -> None:
    """Log USER out: SIGTERM to their jobs, ExitTimeOut, SIGKILL."""
    _finish(_ask(folder, {"op": "logout", "user": user}))


@app.command()
def reboot(folder: Folder) -> None:
    """Stop every job (SIGTERM, ExitTimeOut, SIGKILL) and boot again from what is on disk."""
    _finish(_ask(folder, {"op": "reboot"}))


@app.command()
def shutdown(folder: Folder) -> None:
    """Stop every job and end `sandbox boot`."""
    _finish(_ask(folder, {"op": "shutdown"}))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def launchctl(
    folder: Folder,
    args: Annotated[
        list[str] | None,
        typer.Argument(metavar="ARGS...", help="launchctl's own arguments (bootstrap, bootout, print…)."),
    ] = None,
) -> None:
    """launchctl inside the sandbox: the same subcommands, output and exit codes as on a Mac."""
    from bootstrapper.platform.sandbox.launchctl import launchctl as run_launchctl

    raise typer.Exit(run_launchctl(_existing(folder), list(args or [])))


@app.command(hidden=True)
def scutil(folder: Folder) -> None:
    """`show State:/Users/ConsoleUser` as scutil prints it for the sandbox."""
    _finish(_ask(folder, {"op": "scutil"}))


@app.command()
def ps(folder: Folder, as_json: AsJson = False) -> None:
    """The sandbox's jobs per domain: pid, state, last exit; who has the console."""
    reply = _ask(folder, {"op": "ps"})
    if reply.rc != 0:
        _finish(reply)
    data = json.loads(reply.out)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(f"console: {data['console'] or 'nobody'}; sessions: {', '.join(data['sessions']) or 'none'}")
    typer.echo(f"{'DOMAIN':<10} {'PID':>7} {'STATE':<12} {'LAST EXIT':>9}  LABEL")
    for job in data["jobs"]:
        pid = job["pid"] if job["pid"] is not None else "-"
        last = job["last_exit"] if job["last_exit"] is not None else "-"
        if job["last_signal"] is not None:
            last = f"sig {job['last_signal']}"
        typer.echo(f"{job['domain']:<10} {pid:>7} {job['state']:<12} {last:>9}  {job['label']}")
