"""A connection flood from another local user, and a full listen queue, against the real daemon socket.

The attack: a second user floods the daemon's socket, so the queue of connections waiting to be
accepted fills; the agent's connect then fails (Linux: EAGAIN) and it used to crash or give up, and
the run went on without its user steps. The daemon runs as root here, the attacker as uid 502 and
the real agent as uid 501, as on a Mac with two accounts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bootstrapper.errors import NoAgentError
from bootstrapper.ipc import protocol
from bootstrapper.ipc.server import AgentServer, Limits
from bootstrapper.ipc.transport import open_dir, unix_address
from bootstrapper.paths import Paths
from tests.support.ipc import (
    FAST,
    AgentAs,
    Flood,
    QueuedPeer,
    agent_process,
    fill_backlog,
    me,
    raw_connect,
    read_reply,
    read_to_eof,
    run,
    script,
)

AGENT_UID = 501
ATTACKER_UID = 502
#: How long the agent may take to check in and run one step under the flood; its backoff caps at 5 s.
BOUND = 20.0

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: the daemon is root, the attacker and the agent two other uids"
)


@pytest.fixture
def shared_root() -> Iterator[Path]:
    """A system root that other uids can reach: pytest's own temporary folders are private to root."""
    folder = Path(tempfile.mkdtemp(prefix="bootstrapper-flood-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _wait_for_text(log: Path, text: str, timeout: float) -> None:
    """Blocks the caller on purpose: while it waits, the daemon's event loop accepts nothing."""
    until = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        if time.monotonic() > until:
            raise TimeoutError(
                f"{text!r} not in {log} within {timeout} s:\n{log.read_text(errors='replace')}"
            )
        time.sleep(0.02)


@needs_root
def test_connection_flood_from_another_uid_neither_crashes_nor_starves_the_agent(
    shared_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    paths = Paths(root=shared_root)
    home = shared_root / "home"
    home.mkdir()
    os.chown(home, AGENT_UID, AGENT_UID)
    step, digest = script(shared_root, "step.sh", "id -u")
    limits = Limits(hello_timeout=2.0, frame_timeout=2.0)
    log = tmp_path / "agent.log"
    held: list[int] = []
    attacker_held: list[int] = []
    tasks: list[int] = []

    async def sample(server: AgentServer) -> None:
        while True:
            counts = server.open_connections
            held.append(sum(counts.values()))
            attacker_held.append(counts.get(ATTACKER_UID, 0))
            tasks.append(len(asyncio.all_tasks()))
            await asyncio.sleep(0.005)

    async def body(agent: AgentAs) -> tuple[protocol.Response, float, int, dict[str, int]]:
        async with AgentServer(paths.socket, lambda uid: uid == AGENT_UID, 0, limits=limits) as server:
            flood = Flood(paths.run_dir, ATTACKER_UID, held=500, seconds=60)
            sampling = asyncio.create_task(sample(server))
            try:
                await asyncio.to_thread(flood.wait_flooding)
                started = time.monotonic()
                agent.start()
                try:
                    session = await server.wait_for_agent(AGENT_UID, BOUND)
                except NoAgentError as exc:  # say what the agent saw: this is the failure to explain
                    raise AssertionError(
                        f"{exc}; agent log:\n{log.read_text() if log.exists() else '(none)'}"
                    ) from exc
                reply = await session.run_script("during-the-flood", step, digest, timeout=10)
                took = time.monotonic() - started
                await session.shutdown()
                code = await agent.wait(5)
            finally:
                counts = await asyncio.to_thread(flood.stop)
                sampling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampling
        return reply, took, code, counts

    agent = AgentAs(AGENT_UID, paths.socket, home, log)  # forked before the event loop runs
    try:
        reply, took, code, counts = run(body(agent), timeout=90)
    finally:
        agent.stop()
    assert reply.ok and reply.output == f"{AGENT_UID}\n", (reply, log.read_text())
    assert took < BOUND
    assert code == 0, log.read_text()
    # The flood was real: 500 held open, and replaced one by one as fast as the attacker could.
    assert counts["connected"] > 500, counts
    # The attacker never held a connection in the daemon; the agent's uid at most its own few.
    assert max(attacker_held) == 0
    assert max(held) <= limits.max_per_uid
    # No task per refused connection: the test body, its sampler, the agent's connection and heartbeat.
    assert max(tasks) <= 5, max(tasks)
    assert log.read_text().count("Traceback") == 0
    # Tens of thousands of refusals are one log line (a count follows at most once a minute).
    assert caplog.text.count(f"from uid {ATTACKER_UID}") <= 2, caplog.text[:2000]


@needs_root
@pytest.mark.skipif(sys.platform != "linux", reason="Linux tells a close with unread input apart (a reset)")
def test_refused_uid_is_closed_at_once_without_a_read(shared_root: Path) -> None:
    paths = Paths(root=shared_root)
    hello = protocol.encode(protocol.Hello((1,), "0.1.0", 1))

    async def body() -> tuple[bytes, str]:
        async with AgentServer(paths.socket, lambda uid: uid == AGENT_UID, 0, limits=FAST) as server:
            peer = QueuedPeer(paths.run_dir, ATTACKER_UID, hello)  # its hello waits before we accept
            got = await asyncio.to_thread(peer.result)
            assert server.open_connections == {}
            return got

    data, ending = run(body())
    assert protocol.decode(data[protocol.HEADER_SIZE :]) == protocol.not_needed(ATTACKER_UID)
    assert ending == "reset"  # closed with the hello still unread: a refused peer costs the daemon no read


def test_agent_retries_while_the_listen_queue_is_full_and_checks_in_once_it_drains(
    sandbox: Paths, tmp_path: Path
) -> None:
    log = tmp_path / "agent.log"

    async def body() -> None:
        limits = replace(FAST, listen_backlog=1)
        async with AgentServer(sandbox.socket, lambda uid: uid == me(), me(), limits=limits) as server:
            # From here until the first await the event loop is blocked, so the daemon accepts nothing.
            fillers = fill_backlog(sandbox.socket)
            with agent_process(sandbox.root, log) as agent:
                _wait_for_text(log, "is full (busy, or flooded)", timeout=10)
                time.sleep(1.0)
                assert agent.proc.poll() is None, agent.output()
                for filler in fillers:
                    filler.close()
                session = await server.wait_for_agent(me(), 10)
                assert session.pid == agent.pid and (await session.ping()).ok
        assert agent.output().count("is full (busy, or flooded)") == 1

    run(body())


def test_agent_retries_while_connect_is_refused_and_checks_in_once_the_daemon_listens(
    sandbox: Paths, tmp_path: Path
) -> None:
    sandbox.run_dir.mkdir(parents=True)
    log = tmp_path / "agent.log"
    # A socket bound but not listening: connect gets ECONNREFUSED (as a full queue does on macOS).
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    fd = open_dir(sandbox.run_dir)
    try:
        stale.bind(unix_address(fd, sandbox.socket))
    finally:
        os.close(fd)

    async def body() -> None:
        with agent_process(sandbox.root, log) as agent:
            async with asyncio.timeout(10):
                while "waiting for the daemon" not in agent.output():
                    await asyncio.sleep(0.02)
            await asyncio.sleep(1.0)  # several more refused tries
            stale.close()
            assert agent.proc.poll() is None, agent.output()
            async with AgentServer(sandbox.socket, lambda uid: uid == me(), me(), limits=FAST) as server:
                session = await server.wait_for_agent(me(), 10)
                assert (await session.ping()).ok
            assert agent.output().count("waiting for the daemon") == 1

    run(body())


def test_one_uid_holds_at_most_max_per_uid_connections_and_the_excess_is_closed_at_once(
    sandbox: Paths,
) -> None:
    async def body() -> None:
        limits = replace(FAST, hello_timeout=10.0)  # the held ones must not time out meanwhile
        async with AgentServer(sandbox.socket, lambda uid: uid == me(), me(), limits=limits) as server:
            held = [await raw_connect(sandbox.socket) for _ in range(limits.max_per_uid)]
            async with asyncio.timeout(5):
                while server.open_connections != {me(): limits.max_per_uid}:
                    await asyncio.sleep(0.01)
            reader, writer = await raw_connect(sandbox.socket)
            started = time.monotonic()
            reply = await read_reply(reader)
            assert reply == protocol.Refuse(
                f"uid {me()} has {limits.max_per_uid} connections open already; try again later"
            )
            assert await read_to_eof(reader) == b""
            assert time.monotonic() - started < limits.hello_timeout / 2  # at once, not at a deadline
            writer.close()
            assert server.open_connections == {me(): limits.max_per_uid}
            _, first = held.pop()
            first.close()
            async with asyncio.timeout(5):
                while server.open_connections != {me(): limits.max_per_uid - 1}:
                    await asyncio.sleep(0.01)
            with agent_process(sandbox.root, sandbox.root.parent / "agent.log") as agent:
                session = await server.wait_for_agent(me(), 10)
                assert session.pid == agent.pid and (await session.ping()).ok
            for _, w in held:
                w.close()

    run(body())
