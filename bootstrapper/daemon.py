"""The daemon's job, start to end: what `bootstrapper daemon` (launchd) and `bootstrapper run` do.

Prepare our folders, take the lock, get the manifest, run the scheduler with the agent socket open,
write the completion record, then remove ourselves — or, when the run failed and `on_failure` is
`retry`, stay installed and exit non-zero so launchd runs us again (a bounded number of times).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from bootstrapper import __version__, process
from bootstrapper.atomic import write_json_atomic
from bootstrapper.config import Config
from bootstrapper.deploy.layout import FRAMEWORK
from bootstrapper.engine.agents import AgentGate
from bootstrapper.engine.cleanup import boot_out_daemon, remove_ourselves
from bootstrapper.engine.context import RunContext
from bootstrapper.engine.events import EventBus, Message, Sink
from bootstrapper.engine.run import RunReport, Scheduler
from bootstrapper.engine.source import load_manifest
from bootstrapper.engine.state import DaemonLock, StateStore
from bootstrapper.errors import BootstrapperError, ExitCode, UsageError
from bootstrapper.fetch import FetchOptions
from bootstrapper.ipc.server import AgentServer
from bootstrapper.manifest.conditions import condition_scripts
from bootstrapper.manifest.model import FinalAction, Loaded, Manifest, OnFailure
from bootstrapper.paths import Paths

if TYPE_CHECKING:
    from bootstrapper.engine.plan import Step
    from bootstrapper.manifest.facts import Facts
    from bootstrapper.platform.base import Platform

log = logging.getLogger(__name__)

#: A condition script may take this long before it counts as "does not hold".
CONDITION_TIMEOUT = 60.0


@dataclass(frozen=True)
class RunRequest:
    manifest: str
    #: True when a person watches (the `run` command): progress bars and a summary.
    interactive: bool = False
    sandbox: bool = False
    #: The agent socket only accepts connections from processes running this (macOS).
    agent_executable: str | None = None


def fetch_options(config: Config, manifest_url: str | None = None) -> FetchOptions:
    """Download options from the settings; the configured headers go to the manifest's host only."""
    from urllib.parse import urlsplit

    auth: dict[str, dict[str, str]] = {}
    if config.headers and manifest_url:
        host = urlsplit(manifest_url).hostname
        if host:
            auth[host] = dict(config.headers)
    return FetchOptions(
        concurrency=config.concurrency,
        max_bytes=config.max_download_bytes,
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        min_rate=config.min_rate,
        min_rate_window=config.min_rate_window,
        allow_http=config.allow_http,
        ca_bundle=Path(config.ca_bundle) if config.ca_bundle else None,
        client_cert=Path(config.client_cert) if config.client_cert else None,
        client_key=Path(config.client_key) if config.client_key else None,
        proxy=config.proxy,
        auth_headers=auth,
    )


async def read_manifest(ref: str, config: Config, options: FetchOptions | None = None) -> Loaded:
    """The manifest, with the daemon's settings: retried until `manifest_deadline` (networks come up late)."""
    return await load_manifest(ref, options or fetch_options(config, ref), config.manifest_deadline)


class LiveProbe:
    """Answers path and script conditions on this machine; scripts are run once, up front."""

    def __init__(self, paths: Paths, env: dict[str, str]) -> None:
        self._paths = paths
        self._env = env
        self._scripts: dict[str, bool] = {}

    async def prepare(self, manifest: Manifest) -> None:
        for source in condition_scripts(manifest):
            if source not in self._scripts:
                result = await process.run(
                    ["/bin/sh", "-c", source], timeout=CONDITION_TIMEOUT, env=self._env
                )
                self._scripts[source] = result.ok

    def path_exists(self, path: str) -> bool | None:
        return self._paths.system(path).exists()

    def script_succeeds(self, source: str) -> bool | None:
        return self._scripts.get(source)


def prepare_folders(paths: Paths) -> None:
    """Our folders, with the modes the security rules need (the package's postinstall does the same)."""
    for folder, mode in (
        (paths.install_dir, 0o755),
        (paths.staging_dir, 0o700),
        (paths.log_dir, 0o755),
        (paths.run_dir, 0o755),
    ):
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, mode)


def _command_file(paths: Paths, mac_path: PurePosixPath) -> Path:
    """The command files live in a folder every Mac has; a fresh sandbox needs it made."""
    path = paths.system(mac_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _sinks(paths: Paths, config: Config, interactive: bool, source: str, options: FetchOptions) -> list[Sink]:
    from bootstrapper.progress.humanlog import HumanLogSink
    from bootstrapper.progress.jsonlog import JsonLogSink

    sinks: list[Sink] = [
        JsonLogSink(paths.log_dir / "events.jsonl"),
        HumanLogSink(paths.log_dir / "bootstrapper.log"),
    ]
    if interactive:
        from bootstrapper.progress.console import ConsoleSink

        sinks.insert(0, ConsoleSink())
    if config.depnotify:
        from bootstrapper.progress import depnotify

        sinks.append(depnotify.DepNotifySink(_command_file(paths, depnotify.DEFAULT_COMMAND_FILE)))
    if config.swiftdialog:
        from bootstrapper.progress import swiftdialog

        sinks.append(swiftdialog.SwiftDialogSink(_command_file(paths, swiftdialog.DEFAULT_COMMAND_FILE)))
    if config.webhook_url:
        from bootstrapper.progress.webhook import WebhookSink

        sinks.append(WebhookSink(config.webhook_url, options, context={"manifest": source}))
    return sinks


async def run_daemon(request: RunRequest, config: Config, paths: Paths, platform: Platform) -> int:
    """The whole job; returns the exit code (0 done or already set up, 1 failed)."""
    prepare_folders(paths)
    # One set of options for the manifest and its items: the headers configured for the manifest's host
    # also open the items stored beside it (a private bucket).
    options = fetch_options(config, request.manifest)
    with DaemonLock(paths.lock_file):
        loaded = await read_manifest(request.manifest, config, options)
        manifest = loaded.manifest
        state = StateStore.load(paths.state_file)
        bus = EventBus(_sinks(paths, config, request.interactive, manifest.source, options))
        for warning in loaded.warnings:
            bus.emit(Message("warning", str(warning)))
        owner = os.getuid()
        gate = AgentGate(
            platform,
            None,
            bus,
            user_wait_timeout=config.user_wait_timeout,
            checkin_timeout=config.agent_checkin_timeout,
        )
        server = AgentServer(
            paths.socket,
            gate.allowed_uid,
            owner,
            agent_executable=request.agent_executable,
        )
        gate.attach(server)
        gate.remember(state)
        ctx = RunContext(paths, platform, config, bus, gate, owner_uid=owner)
        probe = LiveProbe(paths, ctx.script_env())
        started = time.time()
        windows = _progress_windows(platform, paths, config, bus, gate)
        try:
            async with server:
                await probe.prepare(manifest)
                report = await Scheduler(manifest, ctx, state, options, probe=probe).execute()
                await gate.shutdown_all()
        finally:
            await bus.aclose()
            for window in windows:
                window.cancel()  # the sink already told the window to quit; stop waiting for it
                with contextlib.suppress(asyncio.CancelledError):
                    await window
        on_failure = OnFailure(config.on_failure) if config.on_failure else manifest.on_failure
        final = FinalAction(config.final_action) if config.final_action else manifest.final_action
        finished = report.result != "failed"
        give_up = not finished and (
            on_failure is OnFailure.CLEANUP or state.attempts_exhausted(config.max_attempts)
        )
        _write_result(paths, manifest, report, state, started, retrying=not finished and not give_up)
        if finished or give_up:
            if config.cleanup:
                await remove_ourselves(platform, paths, gate.uids_seen)
            if finished and report.result == "success" and final is not FinalAction.NONE:
                await _final_action(platform, final)
            if config.cleanup:
                await boot_out_daemon(platform, paths)
    return int(ExitCode.OK if finished else ExitCode.FAILED)


#: Seconds between looks for a progress window's program (installed by a step, perhaps) and for a user.
WINDOW_POLL = 1.0


def _progress_windows(
    platform: Platform, paths: Paths, config: Config, bus: EventBus, gate: AgentGate
) -> list[asyncio.Task[None]]:
    """Keep swiftDialog and DEPNotify open for the primary user while the run goes on (when enabled).

    Each opens as soon as its program exists, which may be only after the step that installs it, and
    opens again when it closed before the end (a logout, then a login; after a reboot the next daemon
    opens it again).
    """
    from bootstrapper.progress import depnotify
    from bootstrapper.progress.swiftdialog import SwiftDialogSink

    over = asyncio.Event()
    bus.subscribe(_RunOver(over))
    windows: list[asyncio.Task[None]] = []
    for sink in bus.sinks:
        if isinstance(sink, SwiftDialogSink) and sink.active:
            dialog = sink
            binary = paths.system(config.swiftdialog_path)

            def swift_argv(binary: Path = binary, sink: SwiftDialogSink = dialog) -> list[str] | None:
                argv = sink.launch_argv(binary=binary)
                return argv if "--listitem" in argv else None  # not before the run has its items

            windows.append(
                asyncio.create_task(
                    _keep_open("swiftDialog", binary, swift_argv, sink.resync, platform, gate, over)
                )
            )
        elif isinstance(sink, depnotify.DepNotifySink):
            app = paths.system(depnotify.DEPNOTIFY_BINARY)
            fixed: list[str] | None = [str(app), "-path", str(sink.command_file)]

            def dep_argv(argv: list[str] | None = fixed) -> list[str] | None:
                return argv

            windows.append(
                asyncio.create_task(_keep_open("DEPNotify", app, dep_argv, None, platform, gate, over))
            )
    return windows


class _RunOver:
    """Tells the progress windows that the run has finished: a window closed now stays closed."""

    def __init__(self, over: asyncio.Event) -> None:
        self._over = over

    def handle(self, event: object) -> None:
        from bootstrapper.engine.events import RunFinished

        if isinstance(event, RunFinished):
            self._over.set()

    def close(self) -> None:
        self._over.set()


async def _keep_open(
    name: str,
    binary: Path,
    argv: Callable[[], list[str] | None],
    opened: Callable[[], None] | None,
    platform: Platform,
    gate: AgentGate,
    over: asyncio.Event,
) -> None:
    said = False
    while not over.is_set():
        # Polled: neither an install nor a login comes with a notification to await.
        await asyncio.sleep(WINDOW_POLL)
        command = argv()
        user = await platform.console_user()
        primary = gate.primary
        if command is None or user is None or not await asyncio.to_thread(binary.is_file):
            continue
        if primary is not None and user.uid != primary.uid:
            continue  # the window is the primary user's; it opens when they have the console
        window = asyncio.create_task(platform.run_as_user(primary or user, command, timeout=86400))
        if opened is not None:
            await asyncio.sleep(1.0)
            opened()  # the window may have opened after items changed
        try:
            await window
        except BootstrapperError as exc:
            if not said:
                log.warning("%s could not be shown: %s", name, exc)
                said = True


async def _final_action(platform: Platform, action: FinalAction) -> None:
    if action is FinalAction.REBOOT:
        await platform.reboot()
    elif action is FinalAction.LOGOUT:
        user = await platform.console_user()
        if user is not None:
            await platform.logout(user)


def _write_result(
    paths: Paths, manifest: Manifest, report: RunReport, state: StateStore, started: float, *, retrying: bool
) -> None:
    """The completion record: a documented JSON file that outlives our removal (for inventory tools)."""
    steps: list[dict[str, Any]] = []
    for item in manifest.items:
        s = state.step(item.id)
        steps.append(
            {
                "id": item.id,
                "name": item.name,
                "status": s.status,
                "exit_code": s.exit_code,
                "reason": s.reason,
            }
        )
    doc = {
        "version": 1,
        "bootstrapper": __version__,
        "manifest": manifest.source,
        "result": report.result,
        "retrying": retrying,
        "stopped_by": report.stopped_by,
        "failed_steps": report.failed,
        "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_seconds": round(report.duration, 3),
        "steps": steps,
    }
    write_json_atomic(paths.result_file, doc, mode=0o644)


def _logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s bootstrapper[%(process)d] %(levelname)s %(message)s",
    )
    # httpx logs every request URL at INFO, query strings (signed URLs, tokens) included.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@dataclass(frozen=True)
class Setup:
    """Everything a run needs, built once from the command line and the settings."""

    manifest: str
    config: Config
    paths: Paths
    platform: Platform
    sandbox: bool


def setup(
    manifest: str | None,
    *,
    sandbox: Path | None = None,
    dry_run: bool = False,
    allow_http: bool = False,
    facts: dict[str, str | None] | None = None,
    env: dict[str, str] | None = None,
    interactive: bool = False,
) -> Setup:
    """The settings and the platform for `run` / `daemon`; bad input raises `UsageError`."""
    import sys

    from bootstrapper.config import load_config

    paths = Paths(root=sandbox.resolve()) if sandbox is not None else Paths()
    if sandbox is not None:
        sandbox.mkdir(parents=True, exist_ok=True)
    config, warnings = load_config(paths, env, {"allow_http": True if allow_http else None})
    _logging(config.log_level if not interactive else "warning")
    for warning in warnings:
        log.warning("%s", warning)
    ref = manifest or config.manifest_url
    if not ref:
        raise UsageError("no manifest: pass --manifest, or set manifest_url in the settings")
    platform: Platform
    if sandbox is not None:
        from bootstrapper.platform.sandbox import SandboxPlatform

        wanted = facts or {}
        platform = SandboxPlatform(
            paths, arch=wanted.get("arch"), os_version=wanted.get("os_version"), model=wanted.get("model")
        )
    else:
        if sys.platform != "darwin":
            raise UsageError(
                "this is not a Mac: rehearse with --sandbox DIR, or plan with `bootstrapper plan`"
            )
        if os.geteuid() != 0 and not dry_run:
            raise UsageError("the bootstrap runs as root on a Mac (sudo), or without root with --sandbox DIR")
        from bootstrapper.platform.macos import MacOSPlatform

        platform = MacOSPlatform(paths)
    return Setup(ref, config, paths, platform, sandbox is not None)


def start(run: Setup, *, interactive: bool) -> int:
    """Run the bootstrap described by `run`; the exit code of the whole job."""
    # The agent is the bundled Python running `-m bootstrapper agent`: its binary lives in our framework.
    agent_exe = None if run.sandbox else str(run.paths.system(FRAMEWORK))
    request = RunRequest(
        run.manifest, interactive=interactive, sandbox=run.sandbox, agent_executable=agent_exe
    )
    return asyncio.run(_stoppable(run_with_provision(request, run.config, run.paths, run.platform)))


async def _stoppable(job: Awaitable[int]) -> int:
    """Run `job`; SIGTERM (launchd's bootout, shutdown or reboot) is an orderly stop, not a death.

    The running step is cancelled, which kills its whole process group; the state file already says
    where the run is, so the next start runs that step again (at least once, never two copies).
    Exits 130 so that launchd (KeepAlive on failure) starts us again when it was not shutting down.
    """
    task = asyncio.current_task()
    assert task is not None
    stopping: list[bool] = []

    def stop() -> None:
        stopping.append(True)
        task.cancel()

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop)
    try:
        return await job
    except asyncio.CancelledError:
        if not stopping:
            raise
        task.uncancel()
        log.warning("stopped by SIGTERM: the interrupted step runs again at the next start")
        return int(ExitCode.INTERRUPTED)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def run_with_provision(request: RunRequest, config: Config, paths: Paths, platform: Platform) -> int:
    if request.sandbox:
        from bootstrapper.engine.provision import provision

        await provision(paths, platform)
    return await run_daemon(request, config, paths, platform)


async def dry_run_plan(run: Setup) -> tuple[Loaded, list[Step], Facts]:
    """The plan for this Mac with its real facts and receipts; paths are looked at, scripts not run."""
    from bootstrapper.engine.plan import plan
    from bootstrapper.manifest.kinds import SPECS

    loaded = await read_manifest(run.manifest, run.config)
    facts = await run.platform.facts()
    receipts: dict[str, str] = {}
    for item in loaded.manifest.items:
        if SPECS[item.type].has_receipt and item.packageid:
            receipt = await run.platform.receipt(item.packageid)
            if receipt is not None:
                receipts[item.packageid] = receipt.version
    probe = LiveProbe(run.paths, {})
    return loaded, plan(loaded.manifest, facts, probe, receipts), facts
