"""Hostile clients and an impostor daemon, each while the real agent is checked in.

Every test ends by proving the real agent is still the one served: same session, a fresh round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bootstrapper.ipc import protocol
from bootstrapper.ipc.server import AgentServer, Session
from bootstrapper.paths import Paths
from tests.support.ipc import (
    FAST,
    OTHER_UID,
    Impostor,
    agent_process,
    connect_as,
    connect_blocking,
    frame,
    me,
    raw_connect,
    read_reply,
    read_to_eof,
    run,
)


@contextlib.asynccontextmanager
async def _served(paths: Paths, log: Path) -> AsyncIterator[tuple[AgentServer, Session]]:
    async with AgentServer(paths.socket, lambda uid: uid == me(), me(), limits=FAST) as server:
        with agent_process(paths.root, log):
            yield server, await server.wait_for_agent(me(), 10)


async def _still_served(server: AgentServer, session: Session) -> None:
    assert server.session(me()) is session and session.alive
    assert (await session.ping(deadline=2)).ok


def test_connection_from_another_uid_is_refused(
    sandbox: Paths, tmp_path: Path, as_root: None, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        async with _served(sandbox, tmp_path / "agent.log") as (server, session):
            hello = protocol.encode(protocol.Hello((1,), "0.1.0", 1))
            got = await connect_as(OTHER_UID, sandbox.socket, hello)
            reply = protocol.decode(got[4:])
            assert reply == protocol.not_needed(OTHER_UID)
            assert set(server.sessions) == {me()}
            await _still_served(server, session)

    run(body())
    assert f"refused a connection from uid {OTHER_UID} (pid " in caplog.text


def test_garbage_bytes_are_refused(sandbox: Paths, tmp_path: Path) -> None:
    async def body() -> None:
        async with _served(sandbox, tmp_path / "agent.log") as (server, session):
            reader, writer = await raw_connect(sandbox.socket)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = await read_reply(reader)
            assert isinstance(reply, protocol.Refuse) and "exceeds the 1048576-byte cap" in reply.reason
            assert await read_to_eof(reader) == b""
            writer.close()
            reader, writer = await raw_connect(sandbox.socket)
            writer.write(frame(b"\xde\xad\xbe\xef not json"))
            reply = await read_reply(reader)
            assert isinstance(reply, protocol.Refuse) and "not UTF-8" in reply.reason
            writer.close()
            await _still_served(server, session)

    run(body())


def test_frame_length_of_2_pow_31_is_refused(sandbox: Paths, tmp_path: Path) -> None:
    async def body() -> None:
        async with _served(sandbox, tmp_path / "agent.log") as (server, session):
            reader, writer = await raw_connect(sandbox.socket)
            writer.write((2**31).to_bytes(4, "big") + b"{")
            reply = await read_reply(reader)
            assert reply == protocol.Refuse("frame of 2147483648 bytes exceeds the 1048576-byte cap")
            writer.close()
            await _still_served(server, session)

    run(body())


def test_half_frame_that_never_ends_is_dropped_at_the_deadline(sandbox: Paths, tmp_path: Path) -> None:
    async def body() -> None:
        async with _served(sandbox, tmp_path / "agent.log") as (server, session):
            reader, writer = await raw_connect(sandbox.socket)
            writer.write((100).to_bytes(4, "big") + b'{"type": "hel')
            await writer.drain()
            started = time.monotonic()
            await _still_served(server, session)  # served while the half frame hangs
            assert await read_to_eof(reader, timeout=3) == b""
            assert time.monotonic() - started < FAST.hello_timeout + 1
            writer.close()
            await _still_served(server, session)

    run(body())


def test_client_that_never_says_hello_is_dropped_at_the_deadline(sandbox: Paths, tmp_path: Path) -> None:
    async def body() -> None:
        async with _served(sandbox, tmp_path / "agent.log") as (server, session):
            reader, writer = await raw_connect(sandbox.socket)
            assert await read_to_eof(reader, timeout=3) == b""
            writer.close()
            await _still_served(server, session)

    run(body())


def test_flood_of_1000_connections_does_not_block_the_agent(sandbox: Paths, tmp_path: Path) -> None:
    failures: list[str] = []

    def flood(n: int) -> list[socket.socket]:
        socks = []
        for _ in range(n):
            try:
                socks.append(connect_blocking(sandbox.socket, timeout=5))
            except OSError as exc:
                failures.append(repr(exc))
        return socks

    async def body() -> None:
        async with _served(sandbox, tmp_path / "agent.log") as (server, session):
            flooding = asyncio.create_task(asyncio.to_thread(flood, 1000))
            while not flooding.done():
                await _still_served(server, session)
                await asyncio.sleep(0.01)
            socks = await flooding
            assert len(socks) > 500, failures[:3]  # most did connect: the flood was real
            assert server._unauthenticated <= FAST.max_unauthenticated
            # The agent's own and a few waiting to say hello: the rest of the flood was closed at once.
            assert server.open_connections[me()] <= FAST.max_per_uid
            await _still_served(server, session)
            for s in socks:
                s.close()
            # once the flood is over, a fresh check-in is accepted again (once the first agent is
            # gone: a live agent is never replaced)
            await session.shutdown()
            with agent_process(sandbox.root, tmp_path / "agent2.log") as agent2:
                async with asyncio.timeout(10):
                    while (fresh := server.session(me())) is None or fresh.pid != agent2.pid:
                        await asyncio.sleep(0.02)
                assert (await fresh.ping()).ok

    run(body(), timeout=60)


def test_wellformed_json_with_wrong_types_is_refused(sandbox: Paths, tmp_path: Path) -> None:
    attacks = [
        {"type": "hello", "versions": "1", "agent_version": "x", "pid": 1},
        {"type": "hello", "versions": [1], "agent_version": 1, "pid": "1"},
        {"type": "hello", "versions": [1], "agent_version": "x", "pid": 1, "uid": 0},
        {"type": "response", "id": 1, "ok": True, "exit_code": 0, "duration": 0, "output": "", "error": None},
        {"type": "request", "id": 1, "op": "shutdown", "args": {}, "deadline": 1},
    ]

    async def body() -> None:
        async with _served(sandbox, tmp_path / "agent.log") as (server, session):
            for attack in attacks:
                reader, writer = await raw_connect(sandbox.socket)
                writer.write(frame(json.dumps(attack).encode()))
                reply = await read_reply(reader)
                assert isinstance(reply, protocol.Refuse), attack
                writer.close()
            await _still_served(server, session)

    run(body())


def test_impostor_daemon_is_refused_by_the_agent(sandbox: Paths, tmp_path: Path, as_root: None) -> None:
    sandbox.run_dir.mkdir(parents=True)
    os.chown(sandbox.run_dir, OTHER_UID, OTHER_UID)
    impostor = Impostor(sandbox.run_dir, OTHER_UID)
    try:
        with agent_process(sandbox.root, tmp_path / "agent.log") as agent:
            assert impostor.report() == "received"  # the agent hung up without sending a byte
            deadline = time.monotonic() + 5
            while "refusing the daemon" not in agent.output() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert f"it runs as uid {OTHER_UID}, expected uid 0" in agent.output()
            assert agent.proc.poll() is None  # still waiting for the real daemon
    finally:
        impostor.kill()
