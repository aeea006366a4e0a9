"""What a run tells the outside world, as plain values, and the bus that hands them to the sinks.

The scheduler only ever emits these events; every display (console, log files, swiftDialog, DEPNotify,
webhook) is a sink that turns them into its own format. That keeps the engine free of presentation and
lets each sink be tested with a scripted list of events. Events are frozen and JSON-able, so the
JSON-lines log can be read back into the same objects.

A sink must never break a run: the bus logs a failing sink and carries on.

Words: the manifest says *stage* and *type*; the events' JSON keys, older than that vocabulary and
read back from logs and by webhook receivers, say `phase` for the stage and `kind` for the type
(`phase_started` announces a stage). They keep those keys so that old logs and receivers still read;
`InstallProgress.phase_text` is the installer's own progress phase, not a stage.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, TypeAlias, get_args, runtime_checkable

log = logging.getLogger(__name__)

StepOutcome: TypeAlias = Literal["done", "failed", "skipped"]
#: `partial`: the run went on past failable failures (listed); `success`: nothing failed.
RunResult: TypeAlias = Literal["success", "partial", "failed", "already-set-up"]
PlannedStatus: TypeAlias = Literal["pending", "done", "skipped"]
Level: TypeAlias = Literal["debug", "info", "warning", "error"]


class _Event:
    """Shared by every event: its wire name and its JSON form."""

    event: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        """`{"event": name, ...fields}`; tuples become lists, so the result is plain JSON."""
        assert dataclasses.is_dataclass(self)
        return {"event": self.event, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class _StepEvent(_Event):
    """Shared by the events about one step: `step_id` comes first, so positional arguments keep
    their order."""

    step_id: str


@dataclass(frozen=True)
class PlannedStep:
    """One line of the plan as displays need it: sinks learn every step's name before it runs."""

    step_id: str
    name: str
    #: The item's type and its stage (see the module docstring for the key names).
    kind: str
    phase: str
    #: `done` when a previous attempt of this run finished it; `skipped` when the plan skips it.
    status: PlannedStatus = "pending"
    reason: str = ""


@dataclass(frozen=True)
class RunStarted(_Event):
    event: ClassVar[str] = "run_started"
    run_id: str
    source: str
    item_count: int
    attempt: int = 1
    steps: tuple[PlannedStep, ...] = ()


@dataclass(frozen=True)
class PhaseStarted(_Event):
    event: ClassVar[str] = "phase_started"
    phase: str


@dataclass(frozen=True)
class StepStarted(_StepEvent):
    event: ClassVar[str] = "step_started"
    name: str
    kind: str
    phase: str


@dataclass(frozen=True)
class DownloadProgress(_StepEvent):
    event: ClassVar[str] = "download_progress"
    done_bytes: int
    total_bytes: int | None = None


@dataclass(frozen=True)
class InstallProgress(_StepEvent):
    event: ClassVar[str] = "install_progress"
    percent: float
    phase_text: str = ""


@dataclass(frozen=True)
class StepRetrying(_StepEvent):
    event: ClassVar[str] = "step_retrying"
    attempt: int
    reason: str


@dataclass(frozen=True)
class StepFinished(_StepEvent):
    event: ClassVar[str] = "step_finished"
    status: StepOutcome
    reason: str = ""
    exit_code: int | None = None
    duration: float = 0.0
    #: A failed step's last lines of output (stderr, else stdout; see `kinds._script.output_tail`).
    output_tail: str = ""


@dataclass(frozen=True)
class StepOutput(_Event):
    """What a step's program printed on one stream (`stdout` or `stderr`), secrets masked, capped to
    its tail (with a note when cut): sent once the step has ended, for the logs."""

    event: ClassVar[str] = "step_output"
    step_id: str
    stream: Literal["stdout", "stderr"]
    text: str


@dataclass(frozen=True)
class RunFinished(_Event):
    event: ClassVar[str] = "run_finished"
    result: RunResult
    failed_steps: tuple[str, ...] = ()
    duration: float = 0.0
    #: The last lines each failed step printed, by step id: also for a background script, which
    #: fails only after its step was reported, so its `StepFinished` never carried them.
    output_tails: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def headline(self) -> str:
        """The outcome in words for the person at the Mac (progress windows, the console)."""
        n = len(self.failed_steps)
        items = f"{n} item" + ("" if n == 1 else "s")
        if self.result == "failed":
            return f"Setup could not finish: {items} failed"
        if self.result == "already-set-up":
            return "This Mac is already set up"
        if n:
            return f"Setup finished with {items} failed"
        return "Setup complete"


@dataclass(frozen=True)
class Message(_Event):
    event: ClassVar[str] = "message"
    level: Level
    text: str


Event: TypeAlias = (
    RunStarted
    | PhaseStarted
    | StepStarted
    | DownloadProgress
    | InstallProgress
    | StepRetrying
    | StepFinished
    | StepOutput
    | RunFinished
    | Message
)

EVENT_TYPES: Mapping[str, type[Event]] = {cls.event: cls for cls in get_args(Event)}


def from_json(obj: Mapping[str, Any]) -> Event:
    """Read back what `to_json` wrote; keys it did not write (a log's timestamp) are ignored."""
    name = obj.get("event")
    cls = EVENT_TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown event {name!r}")
    fields = {f.name: obj[f.name] for f in dataclasses.fields(cls) if f.name in obj}
    try:
        if cls is RunStarted and "steps" in fields:
            fields["steps"] = tuple(PlannedStep(**s) for s in fields["steps"])
        if cls is RunFinished and "failed_steps" in fields:
            fields["failed_steps"] = tuple(fields["failed_steps"])
        return cls(**fields)
    except TypeError as exc:
        raise ValueError(f"malformed {name} event: {exc}") from None


@runtime_checkable
class Sink(Protocol):
    """Consumes events. `handle` must be quick: it runs inline in the scheduler's loop."""

    def handle(self, event: Event) -> None: ...

    def close(self) -> None: ...


class EventBus:
    """Fans events out to the sinks, in the order they subscribed; a failing sink is contained.

    A sink that also has `async def drain()` (the webhook, which posts in the background) is awaited
    by `aclose()` before it is closed, so the final events leave the machine before self-removal.
    """

    def __init__(self, sinks: Iterable[Sink] = ()) -> None:
        self._sinks: list[Sink] = list(sinks)
        self._failures: dict[int, int] = {}

    @property
    def sinks(self) -> tuple[Sink, ...]:
        return tuple(self._sinks)

    def subscribe(self, sink: Sink) -> None:
        self._sinks.append(sink)

    def emit(self, event: Event) -> None:
        for sink in self._sinks:
            try:
                sink.handle(event)
            except Exception:
                self._report(sink, f"failed to handle {event.event}")

    def failures(self, sink: Sink) -> int:
        """How many times `sink` raised: a sink that keeps failing is visible in tests and logs."""
        return self._failures.get(id(sink), 0)

    async def aclose(self) -> None:
        for sink in self._sinks:
            drain = getattr(sink, "drain", None)
            if drain is not None:
                try:
                    await drain()
                except Exception:
                    self._report(sink, "failed to drain")
        self.close()

    def close(self) -> None:
        for sink in self._sinks:
            try:
                sink.close()
            except Exception:
                self._report(sink, "failed to close")

    def _report(self, sink: Sink, what: str) -> None:
        count = self._failures.get(id(sink), 0) + 1
        self._failures[id(sink)] = count
        name = type(sink).__name__
        if count == 1:
            log.warning("progress sink %s %s; the run goes on", name, what, exc_info=True)
        else:
            log.debug("progress sink %s %s again (%d failures)", name, what, count, exc_info=True)
