"""The scheduler: steps strictly in manifest order, one at a time, while later downloads run ahead.

Stages: preflight (a root script exiting 0 means "already set up": stop and clean up), then
setupassistant, then userland (user steps wait for a console user and that user's agent). Failure
policies decide whether a failed step stops the run; the state file records each step as it ends,
so a daemon killed at any point resumes without repeating finished work.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path

import httpx

from bootstrapper import process
from bootstrapper.engine import events as ev
from bootstrapper.engine.context import RunContext
from bootstrapper.engine.kinds import RUNNERS, download_dest, on_disk
from bootstrapper.engine.kinds._script import output_tail
from bootstrapper.engine.kinds.base import Outcome
from bootstrapper.engine.leftovers import folders_to_create
from bootstrapper.engine.plan import Step, decide_step, plan
from bootstrapper.engine.prefetch import Prefetcher
from bootstrapper.engine.probe import StepProbe
from bootstrapper.engine.state import RunResult, StateStore, StepKey
from bootstrapper.errors import BootstrapperError, FetchError, UnsafePathError
from bootstrapper.fetch import Download, Downloader, FetchEvent, FetchOptions
from bootstrapper.fetch import events as fe
from bootstrapper.manifest.conditions import NoProbe, Probe
from bootstrapper.manifest.facts import Facts
from bootstrapper.manifest.kinds import SPECS
from bootstrapper.manifest.model import FailPolicy, Item, Manifest, Stage

log = logging.getLogger(__name__)

#: How long background (`donotwait`) scripts may still run once the last step is done.
BACKGROUND_GRACE = 300.0


@dataclass
class RunReport:
    result: RunResult
    failed: list[str] = field(default_factory=list)
    #: The step (and why) that stopped the run, when one did.
    stopped_by: str | None = None
    duration: float = 0.0
    #: The last lines a failed step printed, by step id (for the completion record).
    output_tails: dict[str, str] = field(default_factory=dict)


def fingerprint(item: Item) -> str:
    """What identifies an item across manifest edits: a changed hash or version makes it a new step."""
    text = "\0".join([item.type.value, item.hash or "", item.version or "", item.url or "", item.path or ""])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _background_failure(task: asyncio.Task[object]) -> tuple[str | None, int | None]:
    """What went wrong with a finished `donotwait` script, if anything, and its exit code."""
    if task.cancelled():
        return "was stopped", None
    if (exc := task.exception()) is not None:
        return f"failed: {exc}", None
    result = task.result()
    if isinstance(result, process.Completed) and not result.ok:
        why = "timed out" if result.timed_out else f"exited with {result.returncode}"
        return why, result.returncode
    if isinstance(result, Outcome) and not result.ok:
        return f"failed: {result.reason}", result.exit_code
    return None, None


def _printed(task: asyncio.Task[object]) -> tuple[str, str]:
    """What a finished `donotwait` script printed (stdout, stderr), secrets already masked."""
    if task.cancelled() or task.exception() is not None:
        return "", ""
    result = task.result()
    if isinstance(result, process.Completed | Outcome):
        return result.stdout, result.stderr
    return "", ""


def stops_run(item: Item, outcome: Outcome) -> bool:
    """The fail_policy table: which failures end the run."""
    if outcome.ok:
        return False
    if item.fail_policy is FailPolicy.FAILURE_IS_NOT_AN_OPTION:
        return True
    if item.fail_policy is FailPolicy.FAILABLE:
        return False
    return outcome.failure == "download"


class _StepGroups:
    """Records in the state file each process group a step starts, while it runs."""

    def __init__(self, state: StateStore, step_id: str) -> None:
        self._state = state
        self._step_id = step_id

    def started(self, group: process.Group) -> None:
        self._state.add_group(self._step_id, group.pgid, group.started)

    def ended(self, group: process.Group) -> None:
        self._state.drop_group(self._step_id, group.pgid)


@dataclass(eq=False)
class Scheduler:
    manifest: Manifest
    ctx: RunContext
    state: StateStore
    fetch_options: FetchOptions
    _: KW_ONLY
    probe: Probe
    transport: httpx.AsyncBaseTransport | None = None
    clock: Callable[[], float] = time.monotonic
    _facts: Facts | None = field(default=None, init=False, repr=False)
    _tails: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    async def execute(self) -> RunReport:
        ctx, state = self.ctx, self.state
        started = self.clock()
        facts = await ctx.platform.facts()
        await self._reap_leftovers()
        state.reconcile(StepKey(i.id, i.name, fingerprint(i)) for i in self.manifest.items)
        done = frozenset(i.id for i in self.manifest.items if state.step(i.id).status in ("done", "skipped"))
        receipts = await self._receipts()
        # Machine conditions are left open here ("decided on the Mac") and decided when each step is
        # reached; their items are prefetched in case they run. A receipt found now stands.
        steps = plan(self.manifest, facts, NoProbe(), receipts, done)
        self._facts = facts
        run_id = uuid.uuid4().hex[:12]
        attempt = state.begin_attempt(run_id, self.manifest.source)
        state.note_folders(folders_to_create(self.manifest, ctx.host_path))
        ctx.bus.emit(
            ev.RunStarted(
                run_id=run_id,
                source=self.manifest.source,
                item_count=len(steps),
                attempt=attempt,
                steps=tuple(
                    ev.PlannedStep(
                        s.id,
                        s.item.name,
                        s.item.type.value,
                        s.item.stage.value,
                        "done" if s.id in done else ("skipped" if s.skip else "pending"),
                        s.reason,
                    )
                    for s in steps
                ),
            )
        )
        report = RunReport("success")
        downloader = Downloader(
            self.fetch_options, ctx.paths.staging_dir, self._on_fetch, transport=self.transport
        )
        async with downloader as dl:
            prefetch = Prefetcher(dl, ctx.config.lookahead_bytes)
            try:
                report = await self._stages(steps, prefetch)
            finally:
                await prefetch.aclose()
        await self._reap_background(report)
        report.output_tails = {s: self._tails[s] for s in report.failed if s in self._tails}
        report.duration = self.clock() - started
        state.set_result(report.result)
        ctx.bus.emit(
            ev.RunFinished(report.result, tuple(report.failed), report.duration, report.output_tails)
        )
        return report

    async def _reap_leftovers(self) -> None:
        """Kill what a daemon that died (SIGKILL, power loss) left running before anything runs again.

        An interrupted step runs again (at least once), but never beside its first copy.
        """
        for step_id, pgid, started in self.state.leftover_groups():
            if await process.reap_group(process.Group(pgid, started)):
                self.ctx.bus.emit(
                    ev.Message(
                        "warning", f"step {step_id}: killed process group {pgid} left by an earlier run"
                    )
                )
            self.state.drop_group(step_id, pgid)

    async def _receipts(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for item in self.manifest.items:
            if SPECS[item.type].has_receipt and item.packageid and item.packageid not in found:
                receipt = await self.ctx.platform.receipt(item.packageid)
                if receipt is not None:
                    found[item.packageid] = receipt.version
        return found

    async def _stages(self, steps: list[Step], prefetch: Prefetcher) -> RunReport:
        report = RunReport("success")
        by_stage = {stage: [s for s in steps if s.item.stage is stage] for stage in Stage}
        # Preflight first, alone: a Mac that is already set up must not download everything else.
        scripts = {s.id for s in steps if SPECS[s.item.type].small}
        prefetch.add(self._downloads(by_stage[Stage.PREFLIGHT]), small=scripts)
        for stage in Stage:
            if stage is Stage.SETUPASSISTANT:
                prefetch.add(
                    self._downloads(by_stage[Stage.SETUPASSISTANT] + by_stage[Stage.USERLAND]), small=scripts
                )
            if not by_stage[stage]:
                continue
            self.state.set_stage(stage.value)
            self.ctx.bus.emit(ev.PhaseStarted(stage.value))
            for step in by_stage[stage]:
                outcome = await self._step(step, prefetch)
                if outcome is None:
                    continue
                if stage is Stage.PREFLIGHT and outcome.ok and outcome.exit_code == 0:
                    report.result = "already-set-up"
                    for rest in steps[steps.index(step) + 1 :]:
                        self.ctx.bus.emit(
                            ev.StepFinished(rest.id, "skipped", "not needed: the Mac is already set up")
                        )
                    return report
                if not outcome.ok and not (stage is Stage.PREFLIGHT and outcome.failure == "execution"):
                    report.failed.append(step.id)
                    if stops_run(step.item, outcome):
                        report.result = "failed"
                        report.stopped_by = f"{step.item.label}: {outcome.reason}"
                        return report
        if report.failed:
            report.result = "partial"  # went on past failable failures: never called success
        return report

    def _downloads(self, steps: list[Step]) -> list[Download]:
        out: list[Download] = []
        for s in steps:
            item = s.item
            if s.skip is True or not SPECS[item.type].downloads or item.hash is None or item.url is None:
                continue
            assert item.file is not None
            out.append(
                Download(
                    key=item.id,
                    url=item.url,
                    dest=download_dest(item, self.ctx),
                    sha256=item.hash,
                    size=item.size,
                    mode=SPECS[item.type].mode,
                    retries=item.retries,
                    retrywait=item.retrywait,
                )
            )
        return out

    async def _step(self, step: Step, prefetch: Prefetcher) -> Outcome | None:
        """Run one step; None when it was skipped."""
        item, bus, state = step.item, self.ctx.bus, self.state
        if step.skip is not True:
            step = await self._decide_now(step)
        if step.skip is not False:
            await prefetch.release(item.id)
            if state.step(step.id).status not in ("done", "skipped"):
                state.mark_skipped(step.id, step.reason)
            bus.emit(ev.StepFinished(step.id, "skipped", step.reason))
            return None
        state.mark_running(step.id)
        bus.emit(ev.StepStarted(step.id, item.name, item.type.value, item.stage.value))
        began = self.clock()
        with process.watching(_StepGroups(state, step.id)):
            outcome = await self._carry_out(item, prefetch)
        took = self.clock() - began
        self._output(step.id, outcome.stdout, outcome.stderr)
        if outcome.ok:
            state.mark_done(step.id, outcome.exit_code)
            bus.emit(ev.StepFinished(step.id, "done", outcome.reason, outcome.exit_code, took))
        elif item.stage is Stage.PREFLIGHT and outcome.failure == "execution":
            # A preflight script saying "not set up yet" is the normal case, not a failure.
            state.mark_done(step.id, outcome.exit_code)
            bus.emit(ev.StepFinished(step.id, "done", "not set up yet: continuing", outcome.exit_code, took))
        else:
            state.mark_failed(step.id, outcome.reason, outcome.exit_code)
            tail = self._tails[step.id] = output_tail(outcome.stdout, outcome.stderr)
            bus.emit(ev.StepFinished(step.id, "failed", outcome.reason, outcome.exit_code, took, tail))
        return outcome

    def _output(self, step_id: str, stdout: str, stderr: str) -> None:
        """Hand what the step printed to the logs, each stream whole (it is already capped)."""
        if stdout:
            self.ctx.bus.emit(ev.StepOutput(step_id, "stdout", stdout))
        if stderr:
            self.ctx.bus.emit(ev.StepOutput(step_id, "stderr", stderr))

    async def _carry_out(self, item: Item, prefetch: Prefetcher) -> Outcome:
        """The step's outcome, whatever happens inside it.

        One item's bytes (a package that breaks the reader, a planted file) or a bug in one runner
        must cost that step, under its fail policy, not the daemon: an exception escaping here would
        end the run with exit 3, and launchd would start it again into the same crash forever.
        """
        try:
            return await self._attempt(item, prefetch)
        except BootstrapperError as exc:
            return Outcome.failed(str(exc))
        except Exception as exc:
            log.exception("%s: unexpected error", item.label)
            return Outcome.failed(f"unexpected error: {type(exc).__name__}: {exc}; see the log")

    async def _attempt(self, item: Item, prefetch: Prefetcher) -> Outcome:
        runner = RUNNERS[item.type]
        file: Path | None = None
        if SPECS[item.type].downloads:
            if item.hash is None:
                return Outcome.failed(
                    "no sha256 hash in the manifest: bootstrapper never runs an unverified download",
                    failure="download",
                )
            try:
                if item.url is None:  # already on the Mac: checked where it lies, never downloaded
                    file = await asyncio.to_thread(on_disk, item, self.ctx)
                else:
                    file = await prefetch.get(item.id)
            except FetchError as exc:
                return Outcome.failed(str(exc), failure="download")
            except UnsafePathError as exc:
                return Outcome.failed(f"refused: {exc}", failure="download")
        try:
            return await runner.run(item, file, self.ctx)
        finally:
            await prefetch.release(item.id)

    async def _decide_now(self, step: Step) -> Step:
        """The step's decision with what this machine says now: its conditions, its receipt."""
        item = step.item
        if isinstance(self.probe, StepProbe):
            await self.probe.refresh(item)
        receipts: dict[str, str] = {}
        if SPECS[item.type].has_receipt and item.packageid:
            receipt = await self.ctx.platform.receipt(item.packageid)
            if receipt is not None:
                receipts[item.packageid] = receipt.version
        assert self._facts is not None
        return decide_step(item, self._facts, self.probe, receipts)

    def _on_fetch(self, event: FetchEvent) -> None:
        bus = self.ctx.bus
        if isinstance(event, fe.Progress):
            bus.emit(ev.DownloadProgress(event.key, event.done, event.total))
        elif isinstance(event, fe.Started):
            bus.emit(ev.DownloadProgress(event.key, 0, event.total))
        elif isinstance(event, fe.Finished):
            bus.emit(ev.DownloadProgress(event.key, event.bytes, event.bytes))
        elif isinstance(event, fe.Retrying):
            bus.emit(ev.StepRetrying(event.key, event.attempt, event.reason))

    async def _reap_background(self, report: RunReport) -> None:
        tasks = list(self.ctx.background)
        if not tasks:
            return
        done, pending = await asyncio.wait(tasks, timeout=BACKGROUND_GRACE)
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if pending:
            self.ctx.bus.emit(
                ev.Message(
                    "warning",
                    f"{len(pending)} background script(s) still ran after {BACKGROUND_GRACE:g} s: stopped",
                )
            )
        for task in done:
            problem, code = _background_failure(task)
            step_id = task.get_name()
            stdout, stderr = _printed(task)
            self._output(step_id, stdout, stderr)
            if problem is not None:
                self._tails[step_id] = output_tail(stdout, stderr)
            if problem is None:
                result = task.result()
                if isinstance(result, Outcome) and step_id in self.state.state.steps:
                    # The completion record carries the exit code of a script that ended after its step.
                    self.state.record_exit(step_id, result.exit_code, result.reason)
                continue
            label = next((i.label for i in self.manifest.items if i.id == step_id), step_id)
            self.ctx.bus.emit(ev.Message("warning", f"background script {label} {problem}"))
            if step_id in self.state.state.steps:
                self.state.mark_failed(step_id, f"in the background: {problem}", code)
            report.failed.append(step_id)
            if report.result == "success":
                report.result = "partial"
