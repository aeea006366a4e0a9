"""The engine's door to the agents: an agent that never checks in is started again, then the step fails."""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
from pathlib import Path

import pytest

from bootstrapper.engine.agents import AGENT_STARTS, AgentGate
from bootstrapper.engine.events import Event, EventBus, Message
from bootstrapper.errors import NoAgentError
from bootstrapper.ipc.server import AgentServer
from bootstrapper.paths import Paths
from bootstrapper.platform.sandbox import SandboxPlatform
from tests.support.ipc import FAST, me, run

CHECKIN = 5.0


class Messages:
    def __init__(self) -> None:
        self.texts: list[str] = []

    def handle(self, event: Event) -> None:
        if isinstance(event, Message):
            self.texts.append(f"{event.level}: {event.text}")

    def close(self) -> None:
        pass


def _spawns(paths: Paths) -> int:
    lines = paths.launchd_journal.read_text().splitlines()
    return sum(1 for line in lines if json.loads(line)["op"] == "spawn")


def _gate(paths: Paths, agent_argv: list[str]) -> tuple[AgentGate, AgentServer, Messages]:
    platform = SandboxPlatform(paths, os_version="14.6", agent_argv=agent_argv)
    messages = Messages()
    gate = AgentGate(platform, None, EventBus([messages]), checkin_timeout=CHECKIN)
    server = AgentServer(paths.socket, gate.allowed_uid, me(), limits=FAST)
    gate.attach(server)
    return gate, server, messages


def test_an_agent_that_died_before_checking_in_is_started_again(sandbox: Paths, tmp_path: Path) -> None:
    mark = tmp_path / "started-once"
    agent = [sys.executable, "-m", "bootstrapper", "agent", "--sandbox", str(sandbox.root)]
    # The first start dies at once (as an agent crashed by a flood did); the second is the real agent.
    once = f"if [ -e {mark} ]; then exec {shlex.join(agent)}; fi; touch {mark}; exit 1"
    gate, server, messages = _gate(sandbox, ["/bin/sh", "-c", once])

    async def body() -> None:
        async with server:
            session = await gate.session()
            assert session.uid == me() and (await session.ping()).ok
            await gate.shutdown_all()

    run(body(), timeout=4 * CHECKIN)
    assert _spawns(sandbox) == 2
    assert any("did not check in" in t and "starting it again" in t for t in messages.texts), messages.texts


def test_an_agent_that_never_checks_in_fails_the_step_after_every_start(sandbox: Paths) -> None:
    gate, server, messages = _gate(sandbox, ["/bin/true"])

    async def body() -> None:
        async with server:
            with pytest.raises(NoAgentError, match=r"the step did not run$"):
                await gate.session()

    run(body(), timeout=(AGENT_STARTS + 2) * CHECKIN)
    assert _spawns(sandbox) == AGENT_STARTS
    assert sum("starting it again" in t for t in messages.texts) == AGENT_STARTS - 1


def test_a_hung_agent_is_replaced_with_kickstart_k_and_is_gone_before_the_new_one_is_used(
    sandbox: Paths, tmp_path: Path
) -> None:
    import dataclasses
    import os
    import plistlib
    import signal

    from bootstrapper.errors import AgentUnresponsiveError
    from tests.support.ipc import gone

    platform = SandboxPlatform(sandbox, os_version="14.6")
    plist = sandbox.launch_agent_plist
    plist.parent.mkdir(parents=True, exist_ok=True)
    agent = [sys.executable, "-m", "bootstrapper", "agent", "--sandbox", str(sandbox.root)]
    plist.write_bytes(
        plistlib.dumps({"Label": sandbox.agent_label, "ProgramArguments": agent, "ExitTimeOut": 1})
    )
    messages = Messages()
    gate = AgentGate(platform, None, EventBus([messages]), checkin_timeout=CHECKIN)
    limits = dataclasses.replace(FAST, heartbeat_interval=0.3, heartbeat_timeout=0.5)
    server = AgentServer(sandbox.socket, gate.allowed_uid, me(), limits=limits)
    gate.attach(server)
    pids: list[int] = []

    async def body() -> None:
        async with server:
            first = await gate.session()
            pids.append(first.pid or 0)
            os.kill(pids[0], signal.SIGSTOP)  # wedged: alive, but it answers nothing
            with pytest.raises(AgentUnresponsiveError):
                await first.ping(deadline=0.5)
            second = await gate.session()
            pids.append(second.pid or 0)
            assert second.pid != first.pid
            assert gone(pids[0]), "the wedged agent still runs beside its replacement"
            assert (await second.ping()).ok
            await gate.shutdown_all()

    try:
        run(body(), timeout=4 * CHECKIN)
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    kicks = [e for e in platform.journal() if e["op"] == "kickstart"]
    assert [e["restart"] for e in kicks] == [False, True]
    assert any("replacing the agent" in t for t in messages.texts), messages.texts
