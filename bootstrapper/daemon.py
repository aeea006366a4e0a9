"""The daemon's job, start to end: what `bootstrapper daemon` (launchd) and `bootstrapper run` do.

Prepare our folders, take the lock, get the manifest, run the scheduler with the agent socket open,
write the completion record, then remove ourselves — or, when the run failed and `on_failure` is
`retry`, stay installed and exit non-zero so launchd runs us again (a bounded number of times).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from bootstrapper import __version__
from bootstrapper.atomic import write_json_atomic
from bootstrapper.config import Config
from bootstrapper.deploy.layout import FRAMEWORK
from bootstrapper.engine.agents import AgentGate
from bootstrapper.engine.cleanup import boot_out_daemon, remove_ourselves
from bootstrapper.engine.context import RunContext
from bootstrapper.engine.events import EventBus, Message, RunFinished, RunStarted, Sink
from bootstrapper.engine.leftovers import remove_leftovers
from bootstrapper.engine.network import network_options
from bootstrapper.engine.probe import LiveProbe
from bootstrapper.engine.run import RunReport, Scheduler
from bootstrapper.engine.source import Source, Trust, fetch_source
from bootstrapper.engine.state import DaemonLock, StateStore, accepted_serial
from bootstrapper.errors import BootstrapperError, ExitCode, UnsafePathError, UsageError
from bootstrapper.fetch import FetchOptions
from bootstrapper.ipc.server import AgentServer
from bootstrapper.manifest.model import FinalAction, Loaded, Manifest, OnFailure
from bootstrapper.paths import Paths
from bootstrapper.safefile import open_dir

if TYPE_CHECKING:
    from bootstrapper.engine.plan import Step
    from bootstrapper.manifest.facts import Facts
    from bootstrapper.platform.base import Platform

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRequest:
    manifest: str
    #: True when a person watches (the `run` command): progress bars and a summary.
    interactive: bool = False
    sandbox: bool = False
    #: The agent socket only accepts connections from processes running this (macOS).
    agent_executable: str | None = None


async def read_manifest(
    ref: str, config: Config, options: FetchOptions, *, state_file: Path | None = None
) -> Source:
    """The manifest, with the daemon's settings: retried until `manifest_deadline` (networks come up late).

    With manifest_public_keys set, its signature must also beat the highest serial in `state_file`.
    A local file is read only if nobody but root (or us) could have written it: root follows it.
    """
    trust = Trust.from_config(config, accepted_serial(state_file) if state_file else None)
    return await fetch_source(ref, options, config.manifest_deadline, trust, trusted=True)


def prepare_folders(paths: Paths) -> None:
    """Our folders, with the modes the security rules need (the package's postinstall does the same).

    Each is reached with `open_dir` (no symlink another user planted, no folder they own) and its
    mode set on that descriptor, so a folder swapped in by path is refused rather than chmodded.
    """
    for folder, mode in (
        (paths.install_dir, 0o755),
        (paths.staging_dir, 0o700),
        (paths.log_dir, 0o755),
        (paths.run_dir, 0o755),
    ):
        fd = open_dir(folder, create=True, folder_mode=mode)
        try:
            if os.fstat(fd).st_uid != os.geteuid():
                raise UnsafePathError(folder, "is not ours; remove it and run again")
            os.fchmod(fd, mode)
        finally:
            os.close(fd)


def _command_file(paths: Paths, mac_path: PurePosixPath) -> Path:
    """The command files live in a folder every Mac has; a fresh sandbox needs it made.

    An unsafe folder is left as it is: the command file's own writer refuses it with one warning.
    """
    path = paths.system(mac_path)
    with contextlib.suppress(UnsafePathError):
        os.close(open_dir(path.parent, create=True))
    return path


def _sinks(
    paths: Paths, config: Config, interactive: bool, source: str, options: FetchOptions, platform: Platform
) -> list[Sink]:
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
        from bootstrapper.progress.webhook import WebhookSink, device

        sinks.append(
            WebhookSink(
                config.webhook_url, options, context={"manifest": source}, identity=lambda: device(platform)
            )
        )
    return sinks


async def run_daemon(request: RunRequest, config: Config, paths: Paths, platform: Platform) -> int:
    """The whole job; returns the exit code (0 done or already set up, 1 failed)."""
    prepare_folders(paths)
    # One set of options for the manifest and its items: the headers configured for the manifest's host
    # also open the items stored beside it (a private bucket).
    options = await network_options(config, request.manifest, platform)
    with DaemonLock(paths.lock_file):
        started = time.time()
        state = StateStore.load(paths.state_file)
        try:
            source = await read_manifest(request.manifest, config, options, state_file=paths.state_file)
        except BootstrapperError as exc:
            return await _could_not_run(request, config, paths, platform, state, exc, started)
        loaded = source.loaded
        manifest = loaded.manifest
        if source.verified is not None:
            state.accept_serial(source.verified.serial)
        bus = EventBus(_sinks(paths, config, request.interactive, manifest.source, options, platform))
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
        windows = _progress_windows(platform, paths, config, bus, gate)
        failure: BaseException | None = None
        try:
            async with server:
                report = await Scheduler(manifest, ctx, state, options, probe=probe).execute()
                await gate.shutdown_all()
        except Exception as exc:  # a full disk, an unusable folder, or a bug: never a restart loop
            failure = exc
            with contextlib.suppress(Exception):
                await gate.shutdown_all()
        except BaseException:
            await bus.aclose()
            raise
        finally:
            for window in windows:
                window.cancel()  # the sink already told the window to quit; stop waiting for it
                with contextlib.suppress(asyncio.CancelledError):
                    await window
        if failure is not None:
            return await _could_not_run(
                request, config, paths, platform, state, failure, started,
                bus=bus, on_failure=manifest.on_failure, uids_seen=gate.uids_seen,
            )  # fmt: skip
        await bus.aclose()
        return await _finish(config, paths, platform, manifest, report, state, started, gate.uids_seen)


async def _finish(
    config: Config,
    paths: Paths,
    platform: Platform,
    manifest: Manifest,
    report: RunReport,
    state: StateStore,
    started: float,
    uids_seen: Iterable[int],
) -> int:
    """Write the completion record; remove ourselves unless launchd is to run us again."""
    on_failure = OnFailure(config.on_failure) if config.on_failure else manifest.on_failure
    final = FinalAction(config.final_action) if config.final_action else manifest.final_action
    finished = report.result != "failed"
    give_up = not finished and (
        on_failure is OnFailure.CLEANUP or state.attempts_exhausted(config.max_attempts)
    )
    _write_result(paths, manifest, report, state, started, retrying=not finished and not give_up)
    code = int(ExitCode.OK if finished else ExitCode.FAILED)
    if finished or give_up:
        if config.cleanup:
            for gone in remove_leftovers(manifest, state.state.created_folders, paths.system):
                log.info("removed %s (downloaded by this run)", gone)
            await remove_ourselves(platform, paths, uids_seen)
        _ending(code)  # from here a SIGTERM (the reboot's, or our own bootout's) is the expected end
        if report.result in ("success", "partial") and final is not FinalAction.NONE:
            await _final_action(platform, final)
        if config.cleanup:
            await boot_out_daemon(platform, paths)
    return code


async def _could_not_run(
    request: RunRequest,
    config: Config,
    paths: Paths,
    platform: Platform,
    state: StateStore,
    exc: BaseException,
    started: float,
    *,
    bus: EventBus | None = None,
    on_failure: OnFailure = OnFailure.RETRY,
    uids_seen: Iterable[int] = (),
) -> int:
    """A run that could not start or go on (an invalid or unreachable manifest, a full disk, a bug).

    It is recorded like a failed run — a log line, events (and so the webhook), the completion record
    with the reason — and counts as an attempt, so `max_attempts` ends launchd's restarts. An
    expected failure exits with its own code (1, or 2 for an invalid manifest); a bug is re-raised
    once recorded, for the CLI to log its traceback and exit 3.
    """
    expected = isinstance(exc, BootstrapperError)
    reason = str(exc) if expected else f"unexpected error: {type(exc).__name__}: {exc}; see the log"
    if expected:
        # a watched run shows the reason once, through its display (the event below)
        log.log(logging.INFO if request.interactive else logging.ERROR, "the run failed: %s", reason)
    else:
        log.error("the run failed: %s", reason, exc_info=exc)
    attempt = state.state.run_attempt
    with contextlib.suppress(BootstrapperError):
        attempt = state.count_attempt(request.manifest)
    with contextlib.suppress(BootstrapperError):
        state.set_result("failed")
    if bus is None:
        options = await network_options(config, request.manifest, platform)
        bus = EventBus(_sinks(paths, config, request.interactive, request.manifest, options, platform))
        run_id = state.state.run_id or "-"
        bus.emit(RunStarted(run_id=run_id, source=request.manifest, item_count=0, attempt=attempt))
    bus.emit(Message("error", reason))
    bus.emit(RunFinished("failed", (), time.time() - started))
    await bus.aclose()
    if config.on_failure:
        on_failure = OnFailure(config.on_failure)
    give_up = on_failure is OnFailure.CLEANUP or state.attempts_exhausted(config.max_attempts)
    report = RunReport("failed", stopped_by=reason, duration=time.time() - started)
    with contextlib.suppress(OSError):
        _write_result(paths, None, report, state, started, retrying=not give_up, reason=reason)
    if give_up and config.cleanup:
        await remove_ourselves(platform, paths, uids_seen)
        _ending(int(getattr(exc, "exit_code", ExitCode.FAILED)) if expected else int(ExitCode.UNEXPECTED))
        await boot_out_daemon(platform, paths)
    if not expected:
        raise exc
    return int(getattr(exc, "exit_code", ExitCode.FAILED))


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
    paths: Paths,
    manifest: Manifest | None,
    report: RunReport,
    state: StateStore,
    started: float,
    *,
    retrying: bool,
    reason: str | None = None,
) -> None:
    """The completion record: a documented JSON file that outlives our removal (for inventory tools).

    Without a manifest (it could not be read) the record has no steps, and `reason` says why.
    """
    steps: list[dict[str, Any]] = []
    for item in manifest.items if manifest is not None else ():
        s = state.step(item.id)
        entry: dict[str, Any] = {
            "id": item.id,
            "name": item.name,
            "status": s.status,
            "exit_code": s.exit_code,
            "reason": s.reason,
        }
        if item.id in report.output_tails:
            entry["output_tail"] = report.output_tails[item.id]  # what the failed step last printed
        steps.append(entry)
    doc = {
        "version": 1,
        "bootstrapper": __version__,
        "manifest": manifest.source if manifest is not None else state.state.source,
        "result": report.result,
        "attempt": state.state.run_attempt,
        "retrying": retrying,
        "stopped_by": report.stopped_by,
        "failed_steps": report.failed,
        "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_seconds": round(report.duration, 3),
        "steps": steps,
    }
    if reason is not None:
        doc["reason"] = reason
    write_json_atomic(paths.result_file, doc, mode=0o644)


def _logging(level: str, *, interactive: bool = False) -> None:
    """Timestamped lines on stderr for launchd's log; in a run someone watches, `warning: …` lines on
    the console the progress display draws on, so that a log record never cuts through a bar."""
    handler: logging.Handler
    if interactive:
        from bootstrapper.progress.console import ConsoleLogHandler

        handler = ConsoleLogHandler()
    else:
        handler = logging.StreamHandler()
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s bootstrapper[%(process)d] %(levelname)s %(message)s",
        handlers=[handler],
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
    public_keys: list[str] | None = None,
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
    flags = {"allow_http": True if allow_http else None, "manifest_public_keys": public_keys or None}
    config, warnings = load_config(paths, env, flags)
    _logging(config.log_level if not interactive else "warning", interactive=interactive)
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


#: Set by `_stoppable` for the run it guards: the exit code once the run is over and we are stopping
#: ourselves (final action, bootout), so that the SIGTERM which follows is not taken for an interruption.
_ENDING: contextvars.ContextVar[list[int]] = contextvars.ContextVar("daemon_ending")


def _ending(code: int) -> None:
    if (ending := _ENDING.get(None)) is not None:
        ending.append(code)


async def _stoppable(job: Awaitable[int]) -> int:
    """Run `job`; SIGTERM (launchd's bootout, shutdown or reboot) is an orderly stop, not a death.

    The running step is cancelled, which kills its whole process group; the state file already says
    where the run is, so the next start runs that step again (at least once, never two copies).
    Exits 130 so that launchd (KeepAlive on failure) starts us again when it was not shutting down.
    """
    task = asyncio.current_task()
    assert task is not None
    stopping: list[bool] = []
    ending: list[int] = []
    _ENDING.set(ending)

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
        if ending:  # the run was over: this is the reboot, or launchd ending us after self-removal
            log.info("stopped by launchd after the run ended")
            return ending[-1]
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

    options = await network_options(run.config, run.manifest, run.platform)
    source = await read_manifest(run.manifest, run.config, options, state_file=run.paths.state_file)
    loaded = source.loaded
    facts = await run.platform.facts()
    receipts: dict[str, str] = {}
    for item in loaded.manifest.items:
        if SPECS[item.type].has_receipt and item.packageid:
            receipt = await run.platform.receipt(item.packageid)
            if receipt is not None:
                receipts[item.packageid] = receipt.version
    probe = LiveProbe(run.paths, {})
    return loaded, plan(loaded.manifest, facts, probe, receipts), facts
