from __future__ import annotations

import asyncio
import json
import logging

import pytest

from bootstrapper.engine.events import (
    DownloadProgress,
    Event,
    EventBus,
    InstallProgress,
    Message,
    PhaseStarted,
    PlannedStep,
    RunFinished,
    RunStarted,
    StepFinished,
    StepOutput,
    StepRetrying,
    StepStarted,
    from_json,
)

ALL_EVENTS: list[Event] = [
    RunStarted("r1", "https://x/m.yaml", 2, 3, (PlannedStep("a", "A", "package", "userland", "done"),)),
    PhaseStarted("userland"),
    StepStarted("a", "A", "package", "userland"),
    DownloadProgress("a", 10, None),
    DownloadProgress("a", 10, 100),
    InstallProgress("a", 42.5, "Running package scripts"),
    StepRetrying("a", 2, "connection reset"),
    StepFinished("a", "failed", "exit 1", 1, 1.5),
    StepFinished("a", "failed", "exit 1", 1, 1.5, "the last\nlines"),
    StepOutput("a", "stderr", "why\nit failed\n"),
    RunFinished("failed", ("a",), 9.0),
    Message("warning", "disk is nearly full"),
]


@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda e: type(e).__name__)
def test_every_event_round_trips_through_json(event: Event) -> None:
    line = json.dumps(event.to_json())
    assert from_json(json.loads(line)) == event


def test_json_form_names_the_event() -> None:
    assert StepFinished("a", "done").to_json() == {
        "event": "step_finished",
        "step_id": "a",
        "status": "done",
        "reason": "",
        "exit_code": None,
        "duration": 0.0,
        "output_tail": "",
    }


def test_extra_keys_are_ignored_and_bad_records_refused() -> None:
    assert from_json({"event": "phase_started", "phase": "p", "ts": "2024"}) == PhaseStarted("p")
    with pytest.raises(ValueError, match="unknown event 'nope'"):
        from_json({"event": "nope"})
    with pytest.raises(ValueError, match="malformed phase_started"):
        from_json({"event": "phase_started"})


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.closed = False

    def handle(self, event: Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        self.closed = True


class Broken:
    def handle(self, event: Event) -> None:
        raise RuntimeError("sink exploded")

    def close(self) -> None:
        raise RuntimeError("close exploded")


def test_a_failing_sink_never_breaks_the_run(caplog: pytest.LogCaptureFixture) -> None:
    broken, good = Broken(), Recorder()
    bus = EventBus([broken])
    bus.subscribe(good)
    with caplog.at_level(logging.DEBUG, logger="bootstrapper.engine.events"):
        for event in ALL_EVENTS:
            bus.emit(event)
        bus.close()
    assert good.events == ALL_EVENTS and good.closed
    assert bus.failures(broken) == len(ALL_EVENTS) + 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Broken" in warnings[0].getMessage()


def test_aclose_drains_background_sinks_before_closing() -> None:
    order: list[str] = []

    class Background(Recorder):
        async def drain(self) -> None:
            await asyncio.sleep(0)
            order.append("drained")

        def close(self) -> None:
            order.append("closed")

    asyncio.run(EventBus([Background()]).aclose())
    assert order == ["drained", "closed"]
