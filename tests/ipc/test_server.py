"""The daemon's server against in-process clients: the socket's safety, the registry, deadlines."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bootstrapper.errors import (
    AgentDisconnectedError,
    AgentUnresponsiveError,
    IPCError,
    NoAgentError,
    NotNeededError,
    ProtocolError,
)
from bootstrapper.ipc import protocol
from bootstrapper.ipc.client import Channel, check_in
from bootstrapper.ipc.server import AgentServer, Session, ensure_agent
from bootstrapper.ipc.transport import open_dir, unix_address
from bootstrapper.paths import Paths
from tests.support.ipc import FAST, OTHER_UID, me, run


def _server(paths: Paths, **kwargs: object) -> AgentServer:
    return AgentServer(paths.socket, lambda uid: uid == me(), me(), limits=FAST, **kwargs)  # type: ignore[arg-type]


async def _fake_agent(server: AgentServer) -> tuple[Channel, Session]:
    """A checked-in agent whose every move the test makes by hand."""
    channel = await check_in(server.socket_path, me())
    session = await server.wait_for_agent(me(), 2)
    return channel, session


def test_socket_is_0666_in_a_0755_directory_owned_by_the_daemon(sandbox: Paths) -> None:
    async def body() -> None:
        sandbox.run_dir.mkdir(parents=True, mode=0o777)
        sandbox.run_dir.chmod(0o777)
        async with _server(sandbox):
            d, s = sandbox.run_dir.stat(), sandbox.socket.lstat()
            assert (stat.S_IMODE(d.st_mode), d.st_uid) == (0o755, me())
            assert stat.S_ISSOCK(s.st_mode) and stat.S_IMODE(s.st_mode) == 0o666
        assert not sandbox.socket.exists()

    run(body())


def test_stale_socket_is_replaced(sandbox: Paths) -> None:
    sandbox.run_dir.mkdir(parents=True)
    dead = socket.socket(socket.AF_UNIX)
    fd = open_dir(sandbox.run_dir)
    dead.bind(unix_address(fd, sandbox.socket))
    os.close(fd)
    dead.close()  # a daemon that died without cleaning up
    assert stat.S_ISSOCK(sandbox.socket.lstat().st_mode)

    async def body() -> None:
        async with _server(sandbox) as server:
            channel, _ = await _fake_agent(server)
            await channel.close()

    run(body())


def test_symlink_at_the_socket_path_is_refused_and_not_followed(sandbox: Paths, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    sandbox.run_dir.mkdir(parents=True)
    sandbox.socket.symlink_to(victim)
    with pytest.raises(IPCError, match=r"refusing to replace .*ipc\.sock: it is a symlink, not a socket"):
        run(_server(sandbox).start())
    assert victim.read_text() == "precious" and sandbox.socket.is_symlink()


def test_regular_file_at_the_socket_path_is_refused(sandbox: Paths) -> None:
    sandbox.run_dir.mkdir(parents=True)
    sandbox.socket.write_text("not a socket")
    with pytest.raises(IPCError, match="it is a regular file, not a socket; remove it"):
        run(_server(sandbox).start())
    assert sandbox.socket.read_text() == "not a socket"


def test_symlinked_socket_directory_is_refused(sandbox: Paths, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sandbox.run_dir.parent.mkdir(parents=True)
    sandbox.run_dir.symlink_to(elsewhere)
    with pytest.raises(IPCError, match=r"cannot use .* as the socket directory"):
        run(_server(sandbox).start())
    assert list(elsewhere.iterdir()) == []


def test_socket_directory_owned_by_another_uid_is_refused(sandbox: Paths, as_root: None) -> None:
    sandbox.run_dir.mkdir(parents=True)
    os.chown(sandbox.run_dir, OTHER_UID, OTHER_UID)
    with pytest.raises(IPCError, match=rf"owned by uid {OTHER_UID}, expected {me()}; remove it"):
        run(_server(sandbox).start())


def test_second_daemon_on_a_live_socket_is_refused(sandbox: Paths) -> None:
    async def body() -> None:
        async with _server(sandbox):
            with pytest.raises(IPCError, match="another daemon is already listening"):
                await _server(sandbox).start()
            assert stat.S_ISSOCK(sandbox.socket.lstat().st_mode)

    run(body())


def test_closing_leaves_a_socket_that_is_not_ours_alone(sandbox: Paths) -> None:
    async def body() -> None:
        server = _server(sandbox)
        await server.start()
        sandbox.socket.unlink()
        sandbox.socket.write_text("someone else's")
        await server.close()
        assert sandbox.socket.read_text() == "someone else's"

    run(body())


def test_wait_for_agent_times_out_with_a_clear_error(sandbox: Paths) -> None:
    async def body() -> None:
        async with _server(sandbox) as server:
            with pytest.raises(NoAgentError, match=r"no agent checked in for uid 501 within 0\.1 s"):
                await server.wait_for_agent(501, 0.1)

    run(body())


def test_a_second_check_in_is_refused_while_the_first_agent_lives_and_may_take_over_after(
    sandbox: Paths,
) -> None:
    async def body() -> None:
        limits = replace(FAST, heartbeat_interval=0.2, heartbeat_timeout=0.3)
        async with AgentServer(sandbox.socket, lambda uid: uid == me(), me(), limits=limits) as server:
            old_channel, old = await _fake_agent(server)
            in_flight = asyncio.create_task(old.ping(deadline=5))
            request = await old_channel.receive()
            assert isinstance(request, protocol.Request)
            with pytest.raises(IPCError, match=r"another agent of uid \d+ \(pid \d+\) is checked in"):
                await check_in(sandbox.socket, me())
            assert server.session(me()) is old and old.alive
            await old_channel.send(protocol.Response(request.id, ok=True))
            assert (await in_flight).ok, "the first agent's request in flight was not disturbed"
            # The first agent stops answering (wedged): once it misses a heartbeat it is dropped,
            # and only then may another agent of the same user check in.
            await old.wait_closed()
            assert "unresponsive" in (old.close_reason or "")
            new_channel = await check_in(sandbox.socket, me())
            new = await server.wait_for_agent(me(), 2)
            assert new is not old and new.alive
            await old_channel.close()
            await new_channel.close()

    run(body())


def test_a_second_call_waits_for_the_first(sandbox: Paths) -> None:
    async def body() -> None:
        async with _server(sandbox) as server:
            channel, session = await _fake_agent(server)
            first = asyncio.create_task(session.ping(deadline=2))
            second = asyncio.create_task(session.ping(deadline=2))
            request = await channel.receive()
            assert isinstance(request, protocol.Request)
            with pytest.raises(TimeoutError):  # nothing else is sent while the first is in flight
                async with asyncio.timeout(0.2):
                    await channel.receive()
            assert not second.done()
            await channel.send(protocol.Response(request.id, ok=True))
            assert (await first).ok
            request2 = await channel.receive()
            assert isinstance(request2, protocol.Request) and request2.id != request.id
            await channel.send(protocol.Response(request2.id, ok=True))
            assert (await second).ok
            await channel.close()

    run(body())


def test_agent_that_misses_the_deadline_is_dropped_and_the_daemon_carries_on(sandbox: Paths) -> None:
    async def body() -> None:
        async with _server(sandbox) as server:
            channel, session = await _fake_agent(server)
            queued = asyncio.create_task(session.ping(deadline=5))
            with pytest.raises(
                AgentUnresponsiveError, match=r"did not answer run_script within 0\.2 s; dropped it"
            ):
                await session.run_script("s", "/x.sh", "a" * 64, timeout=1, deadline=0.2)
            assert not session.alive and server.session(me()) is None
            with pytest.raises(AgentDisconnectedError):
                await queued
            await channel.close()
            channel2, session2 = await _fake_agent(server)
            serve = asyncio.create_task(_answer_pings(channel2))
            assert (await session2.ping()).ok
            serve.cancel()
            await channel2.close()

    run(body())


async def _answer_pings(channel: Channel) -> None:
    while (message := await channel.receive()) is not None:
        if isinstance(message, protocol.Request):
            await channel.send(protocol.Response(message.id, ok=True))
        elif isinstance(message, protocol.Ping):
            await channel.send(protocol.Pong(message.id))


def test_disconnect_mid_call_is_a_clear_error(sandbox: Paths) -> None:
    async def body() -> None:
        async with _server(sandbox) as server:
            channel, session = await _fake_agent(server)
            call = asyncio.create_task(session.run_script("dock", "/d.sh", "b" * 64, timeout=30))
            assert isinstance(await channel.receive(), protocol.Request)
            await channel.close()
            with pytest.raises(
                AgentDisconnectedError, match=r"agent of uid \d+ \(pid \d+\) went away: disconnected"
            ):
                await call
            assert server.session(me()) is None

    run(body())


def test_idle_agent_that_stops_answering_heartbeats_is_dropped(sandbox: Paths) -> None:
    async def body() -> None:
        limits = replace(FAST, heartbeat_interval=0.05, heartbeat_timeout=0.1)
        async with AgentServer(sandbox.socket, lambda uid: True, me(), limits=limits) as server:
            channel, session = await _fake_agent(server)  # never answers
            async with asyncio.timeout(2):
                await session.wait_closed()
            assert "did not answer a heartbeat" in (session.close_reason or "")
            await channel.close()

    run(body())


def test_idle_agent_that_answers_heartbeats_stays(sandbox: Paths) -> None:
    async def body() -> None:
        limits = replace(FAST, heartbeat_interval=0.02, heartbeat_timeout=0.5)
        async with AgentServer(sandbox.socket, lambda uid: True, me(), limits=limits) as server:
            channel, session = await _fake_agent(server)
            serve = asyncio.create_task(_answer_pings(channel))
            await asyncio.sleep(0.3)
            assert session.alive and server.session(me()) is session
            serve.cancel()
            await channel.close()

    run(body())


def test_checked_in_agent_answering_an_unknown_id_is_dropped(sandbox: Paths) -> None:
    async def body() -> None:
        async with _server(sandbox) as server:
            channel, session = await _fake_agent(server)
            await channel.send(protocol.Response(999, ok=True))
            reply = await channel.receive()
            assert isinstance(reply, protocol.Refuse) and "unknown id 999" in reply.reason
            await session.wait_closed()
            assert "broke protocol" in (session.close_reason or "")
            await channel.close()

    run(body())


def test_checked_in_agent_sending_garbage_is_dropped(sandbox: Paths) -> None:
    async def body() -> None:
        async with _server(sandbox) as server:
            channel, session = await _fake_agent(server)
            channel.writer.write(b"\x00\x00\x00\x03abc")
            await session.wait_closed()
            assert "not JSON" in (session.close_reason or "")
            await channel.close()

    run(body())


def test_cancelled_call_closes_the_session(sandbox: Paths) -> None:
    async def body() -> None:
        async with _server(sandbox) as server:
            channel, session = await _fake_agent(server)
            call = asyncio.create_task(session.ping(deadline=5))
            await channel.receive()
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            assert not session.alive and "cancelled" in (session.close_reason or "")
            await channel.close()

    run(body())


def test_unsupported_protocol_version_is_refused(sandbox: Paths) -> None:
    async def body() -> None:
        async with _server(sandbox) as server:
            with pytest.raises(IPCError, match="no common protocol version: agent speaks 7, 8"):
                await check_in(sandbox.socket, me(), versions=(7, 8))
            assert server.sessions == {}

    run(body())


def test_uid_not_allowed_is_refused_with_a_reason(sandbox: Paths) -> None:
    async def body() -> None:
        async with AgentServer(sandbox.socket, lambda uid: False, me(), limits=FAST) as server:
            with pytest.raises(
                NotNeededError, match=rf"does not need this agent: not needed: uid {me()} may"
            ):
                await check_in(sandbox.socket, me())
            assert server.sessions == {}

    run(body())


def test_peer_running_another_executable_is_refused(sandbox: Paths) -> None:
    if sys.platform != "linux":
        pytest.skip("the executable check is exercised here through /proc")

    async def body() -> None:
        async with _server(sandbox, agent_executable="/usr/bin/true"):
            with pytest.raises(IPCError, match="this program is not the bootstrapper agent"):
                await check_in(sandbox.socket, me())
        async with _server(sandbox, agent_executable=sys.executable) as server:
            channel, _ = await _fake_agent(server)
            await channel.close()
        # A folder: the bundled Python framework, whose launcher re-executes a binary inside it.
        folder = os.path.dirname(os.path.realpath(sys.executable))
        async with _server(sandbox, agent_executable=folder) as server:
            channel, _ = await _fake_agent(server)
            await channel.close()
        async with _server(sandbox, agent_executable=folder + "-other"):
            with pytest.raises(IPCError, match="this program is not the bootstrapper agent"):
                await check_in(sandbox.socket, me())

    run(body())


def test_agent_that_sees_another_daemon_uid_refuses_it(sandbox: Paths) -> None:
    async def body() -> None:
        async with _server(sandbox) as server:
            from bootstrapper.errors import ImpostorError

            with pytest.raises(ImpostorError, match=rf"runs as uid {me()}, expected uid {me() + 1}"):
                await check_in(sandbox.socket, me() + 1)
            await asyncio.sleep(0.05)
            assert server.sessions == {}

    run(body())


def test_ensure_agent_starts_the_agent_only_when_none_checked_in(sandbox: Paths) -> None:
    async def body() -> None:
        async with _server(sandbox) as server:
            started: list[Channel] = []

            async def start() -> None:
                started.append(await check_in(sandbox.socket, me()))

            session = await ensure_agent(server, me(), start, timeout=2)
            assert len(started) == 1 and session.alive
            assert await ensure_agent(server, me(), start, timeout=2) is session
            assert len(started) == 1
            await started[0].close()

            async def nothing() -> None:
                return None

            await session.wait_closed()
            with pytest.raises(NoAgentError, match=r"was started but did not check in within 0\.1 s"):
                await ensure_agent(server, me(), nothing, timeout=0.1)

    run(body())


def test_a_slow_start_does_not_eat_the_agents_time_to_check_in(sandbox: Paths) -> None:
    """A busy Mac may take a while to launch the agent; its check-in still gets the whole window."""

    async def body() -> None:
        async with _server(sandbox) as server:
            late: list[asyncio.Task[Channel]] = []

            async def dial_later() -> Channel:
                await asyncio.sleep(0.2)
                return await check_in(sandbox.socket, me())

            async def slow_start() -> None:
                await asyncio.sleep(0.6)  # longer than the check-in window below
                late.append(asyncio.create_task(dial_later()))

            session = await ensure_agent(server, me(), slow_start, timeout=0.5)
            assert session.alive
            await (await late[0]).close()
            await session.wait_closed()

            async def hung() -> None:
                await asyncio.sleep(30)

            with pytest.raises(NoAgentError, match=r"starting the agent for uid \d+ took longer than 0\.2 s"):
                await ensure_agent(server, me(), hung, timeout=5, start_timeout=0.2)

    run(body())


def test_bad_deadline_is_a_caller_error(sandbox: Paths) -> None:
    async def body() -> None:
        async with _server(sandbox) as server:
            channel, session = await _fake_agent(server)
            with pytest.raises(ValueError, match="positive number of seconds"):
                await session.ping(deadline=0)
            with pytest.raises(ProtocolError, match="unknown op 'reboot'"):
                await session.call("reboot", {})
            await channel.close()

    run(body())


def test_a_call_whose_send_fails_as_the_agent_goes_leaves_no_unretrieved_exception(
    sandbox: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent goes away while a request is being sent: the session fails the call's future and the
    send fails too. Nobody awaits that future any more; asyncio must not log it as never retrieved."""
    import gc

    from bootstrapper.ipc import server as server_module

    unretrieved: list[str] = []
    real_write = server_module.write_frame

    async def body() -> None:
        asyncio.get_running_loop().set_exception_handler(
            lambda _loop, ctx: unretrieved.append(ctx["message"])
        )
        async with _server(sandbox) as server:
            channel, session = await _fake_agent(server)

            async def write_as_the_agent_leaves(writer: object, message: object, **kwargs: object) -> None:
                if isinstance(message, protocol.Request | protocol.Ping):
                    session._abort("disconnected", graceful=False)
                    raise ConnectionResetError("reset by peer")
                await real_write(writer, message, **kwargs)  # type: ignore[arg-type]

            monkeypatch.setattr(server_module, "write_frame", write_as_the_agent_leaves)
            with pytest.raises(AgentDisconnectedError):
                await session.ping(deadline=5)
            await channel.close()
        gc.collect()
        await asyncio.sleep(0)

    run(body())
    gc.collect()
    assert [m for m in unretrieved if "never retrieved" in m] == []
