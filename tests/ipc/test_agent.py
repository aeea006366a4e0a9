"""The real agent process (`python -m bootstrapper agent --sandbox ROOT`) against the real server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import signal
import time
from pathlib import Path

import pytest

from bootstrapper.errors import AgentDisconnectedError, AgentUnresponsiveError
from bootstrapper.ipc import protocol
from bootstrapper.ipc.server import AgentServer
from bootstrapper.paths import Paths
from tests.support.ipc import (
    FAST,
    agent_process,
    gone,
    kill_group,
    me,
    run,
    script,
    sha256,
    wait_exit,
    wait_for_file,
)


def _server(paths: Paths) -> AgentServer:
    return AgentServer(paths.socket, lambda uid: uid == me(), me(), limits=FAST)


def test_agent_checks_in_and_runs_a_script_with_exit_code_and_output(sandbox: Paths, tmp_path: Path) -> None:
    path, digest = script(tmp_path, "hello.sh", 'echo "hello $1"; echo oops >&2; exit 3')

    async def body() -> None:
        async with _server(sandbox) as server:
            with agent_process(sandbox.root, tmp_path / "agent.log") as agent:
                session = await server.wait_for_agent(me(), 10)
                assert session.pid == agent.pid
                reply = await session.run_script("greet", path, digest, ["world"], timeout=5)
                assert (reply.ok, reply.exit_code) == (False, 3)
                assert (reply.output, reply.stderr) == ("hello world\n", "oops\n")
                assert reply.error == f"{path} exited with 3"
                assert 0 <= reply.duration < 5
                ok = await session.run_script("greet", path.with_name("ok.sh"), *_ok(tmp_path))
                assert ok.ok and ok.exit_code == 0 and ok.error is None

    run(body())


def test_a_reply_too_large_for_a_frame_is_cut_to_fit_not_lost(sandbox: Paths, tmp_path: Path) -> None:
    # 300 KB of NUL bytes on each stream: 256 KiB kept of each, 6 bytes each in JSON (\u0000): ~3 MB.
    body = "head -c 300000 /dev/zero; echo; echo last-out; head -c 300000 /dev/zero >&2; echo last-err >&2"
    path, digest = script(tmp_path, "flood.sh", body + "; exit 2")

    async def body_() -> None:
        async with _server(sandbox) as server:
            with agent_process(sandbox.root, tmp_path / "agent.log"):
                session = await server.wait_for_agent(me(), 10)
                reply = await session.run_script("flood", path, digest, timeout=20)
        assert (reply.ok, reply.exit_code) == (False, 2)
        assert reply.output.endswith("\nlast-out\n") and reply.stderr.endswith("\x00last-err\n")
        assert "characters cut to fit the agent's reply]" in reply.output + reply.stderr
        assert len(protocol.encode(reply)) <= protocol.MAX_FRAME + protocol.HEADER_SIZE

    run(body_())


def _ok(folder: Path) -> tuple[str]:
    _, digest = script(folder, "ok.sh", "true")
    return (digest,)


def test_script_runs_as_this_user_with_a_cleaned_environment(sandbox: Paths, tmp_path: Path) -> None:
    path, digest = script(tmp_path, "env.sh", "id -u; env")
    user = pwd.getpwuid(os.getuid())

    async def body() -> None:
        async with _server(sandbox) as server:
            env = {"SECRET_TOKEN": "hunter2", "DYLD_INSERT_LIBRARIES": "/evil.dylib"}
            with agent_process(sandbox.root, tmp_path / "agent.log", env):
                session = await server.wait_for_agent(me(), 10)
                reply = await session.run_script("env", path, digest, timeout=5)
        lines = reply.output.splitlines()
        assert lines[0] == str(os.getuid())
        env_out = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
        # In the sandbox the user's home lives inside it: rehearsals never touch the real home.
        assert env_out["HOME"] == str(sandbox.root / "Users" / user.pw_name)
        assert env_out["BOOTSTRAPPER_ROOT"] == str(sandbox.root)
        assert env_out["USER"] == env_out["LOGNAME"] == user.pw_name
        assert env_out["TMPDIR"]
        assert "SECRET_TOKEN" not in env_out and "DYLD_INSERT_LIBRARIES" not in env_out

    run(body())


def test_second_call_waits_for_the_first(sandbox: Paths, tmp_path: Path) -> None:
    log = tmp_path / "order.log"
    path, digest = script(tmp_path, "slow.sh", f'echo "start $1" >> {log}; sleep 0.3; echo "end $1" >> {log}')

    async def body() -> None:
        async with _server(sandbox) as server:
            with agent_process(sandbox.root, tmp_path / "agent.log"):
                session = await server.wait_for_agent(me(), 10)
                replies = await asyncio.gather(
                    session.run_script("a", path, digest, ["a"], timeout=5),
                    session.run_script("b", path, digest, ["b"], timeout=5),
                )
        assert all(r.ok for r in replies)
        assert log.read_text().split("\n")[:4] == ["start a", "end a", "start b", "end b"]

    run(body())


def test_hung_agent_hits_the_deadline_and_the_daemon_carries_on(sandbox: Paths, tmp_path: Path) -> None:
    pidfile = tmp_path / "hung.pid"
    path, digest = script(tmp_path, "hang.sh", f"echo $$ > {pidfile}; sleep 30")

    async def body() -> None:
        async with _server(sandbox) as server:
            with agent_process(sandbox.root, tmp_path / "agent.log"):
                session = await server.wait_for_agent(me(), 10)
                started = time.monotonic()
                with pytest.raises(AgentUnresponsiveError, match=r"did not answer run_script within 0\.5 s"):
                    await session.run_script("hang", path, digest, timeout=60, deadline=0.5)
                assert time.monotonic() - started < 2
                # the dropped agent kills its script, dials again and is served again
                again = await server.wait_for_agent(me(), 10)
                assert again is not session and (await again.ping()).ok
                script_pid = int(await wait_for_file(pidfile))
                for _ in range(100):
                    if gone(script_pid):
                        break
                    await asyncio.sleep(0.05)
                assert gone(script_pid)

    run(body())


def test_script_timeout_kills_it_and_says_so(sandbox: Paths, tmp_path: Path) -> None:
    path, digest = script(tmp_path, "slow.sh", "echo started; sleep 30")

    async def body() -> None:
        async with _server(sandbox) as server:
            with agent_process(sandbox.root, tmp_path / "agent.log"):
                session = await server.wait_for_agent(me(), 10)
                reply = await session.run_script("slow", path, digest, timeout=0.3)
        assert not reply.ok and reply.error == f"{path} timed out after 0.3 s"
        assert reply.output == "started\n"

    run(body())


def test_changed_script_is_refused_by_its_hash(sandbox: Paths, tmp_path: Path) -> None:
    path, digest = script(tmp_path, "s.sh", "echo original")
    path.write_text("#!/bin/sh\necho tampered\n")

    async def body() -> None:
        async with _server(sandbox) as server:
            with agent_process(sandbox.root, tmp_path / "agent.log"):
                session = await server.wait_for_agent(me(), 10)
                reply = await session.run_script("s", path, digest, timeout=5)
        assert not reply.ok and reply.exit_code is None and reply.output == ""
        assert reply.error == (
            f"refused: {path}: changed since it was verified (sha256 {sha256(path)}, expected {digest})"
        )

    run(body())


def test_agent_killed_mid_script_is_a_clear_error_and_a_restarted_agent_serves(
    sandbox: Paths, tmp_path: Path
) -> None:
    pidfile = tmp_path / "script.pid"
    path, digest = script(tmp_path, "long.sh", f"echo $$ > {pidfile}; sleep 30")

    async def body() -> None:
        async with _server(sandbox) as server:
            with agent_process(sandbox.root, tmp_path / "agent.log") as agent:
                session = await server.wait_for_agent(me(), 10)
                call = asyncio.create_task(session.run_script("long", path, digest, timeout=60))
                script_pid = int(await wait_for_file(pidfile))
                agent.proc.send_signal(signal.SIGKILL)
                try:
                    with pytest.raises(AgentDisconnectedError, match=r"went away: disconnected"):
                        await call
                finally:
                    kill_group(script_pid)  # SIGKILL gave the agent no chance to
            with agent_process(sandbox.root, tmp_path / "agent2.log") as agent2:
                session2 = await server.wait_for_agent(me(), 10)
                assert session2.pid == agent2.pid
                _, ok = script(tmp_path, "ok.sh", "echo fine")
                reply = await session2.run_script("ok", tmp_path / "ok.sh", ok, timeout=5)
                assert reply.ok and reply.output == "fine\n"

    run(body())


def test_daemon_restarted_agent_reconnects(sandbox: Paths, tmp_path: Path) -> None:
    async def body() -> None:
        with agent_process(sandbox.root, tmp_path / "agent.log") as agent:
            async with _server(sandbox) as server:
                first = await server.wait_for_agent(me(), 10)
                assert (await first.ping()).ok
            await asyncio.sleep(0.3)  # the daemon is away; the agent keeps dialling
            async with _server(sandbox) as server:
                second = await server.wait_for_agent(me(), 10)
                assert second.pid == agent.pid and (await second.ping()).ok

    run(body())


def test_shutdown_makes_the_agent_exit_cleanly(sandbox: Paths, tmp_path: Path) -> None:
    async def body() -> None:
        async with _server(sandbox) as server:
            with agent_process(sandbox.root, tmp_path / "agent.log") as agent:
                session = await server.wait_for_agent(me(), 10)
                await session.shutdown()
                assert await wait_exit(agent.proc, 5) == 0
                assert not session.alive and server.sessions == {}
                assert "shutting down at the daemon's request" in agent.output()

    run(body())


def test_sigterm_makes_the_agent_exit_cleanly(sandbox: Paths, tmp_path: Path) -> None:
    async def body() -> None:
        async with _server(sandbox) as server:
            with agent_process(sandbox.root, tmp_path / "agent.log") as agent:
                session = await server.wait_for_agent(me(), 10)
                agent.proc.send_signal(signal.SIGTERM)
                assert await wait_exit(agent.proc, 5) == 0
                await session.wait_closed()

    run(body())


def test_agent_without_a_daemon_waits_quietly_and_checks_in_later(sandbox: Paths, tmp_path: Path) -> None:
    async def body() -> None:
        with agent_process(sandbox.root, tmp_path / "agent.log") as agent:
            # Start the daemon only once the agent has found it absent (a loaded machine starts it late).
            deadline = time.monotonic() + 30
            while "waiting for the daemon" not in agent.output():
                assert agent.proc.poll() is None, agent.output()
                assert time.monotonic() < deadline, agent.output()
                await asyncio.sleep(0.05)
            async with _server(sandbox) as server:
                session = await server.wait_for_agent(me(), 10)
                assert (await session.ping()).ok
            assert agent.output().count("waiting for the daemon") == 1

    run(body())


def test_agent_outside_the_sandbox_refuses_to_run_as_root(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bootstrapper import cli

    monkeypatch.setattr(os, "getuid", lambda: 0)
    assert cli.main(["agent"]) == 2
    assert capsys.readouterr().err == (
        "error: the agent runs in a user's login session, never as root; launchd starts it per user\n"
    )


def test_agent_checks_in_under_a_root_deeper_than_the_socket_path_limit(tmp_path: Path) -> None:
    paths = Paths(root=tmp_path / ("r" * 80))
    assert len(os.fsencode(paths.socket)) > 108

    async def body() -> None:
        async with _server(paths) as server:
            with agent_process(paths.root, tmp_path / "agent.log"):
                session = await server.wait_for_agent(me(), 10)
                assert (await session.ping()).ok

    run(body())


def test_after_a_sigkill_the_next_agent_kills_the_script_the_first_left_running(
    sandbox: Paths, tmp_path: Path
) -> None:
    pid_file = tmp_path / "script.pid"
    path, digest = script(tmp_path, "long.sh", f"echo $$ > {pid_file}; sleep 60 & wait")

    async def body() -> int:
        async with _server(sandbox) as server:
            with agent_process(sandbox.root, tmp_path / "agent.log") as first:
                session = await server.wait_for_agent(me(), 10)
                call = asyncio.create_task(session.run_script("long", path, digest, timeout=60))
                pgid = int(await wait_for_file(pid_file))
                groups_file = sandbox.root / "Users" / pwd.getpwuid(os.getuid()).pw_name
                groups_file = groups_file / ".bootstrapper-agent-groups.json"
                await wait_for_file(groups_file)
                first.proc.send_signal(signal.SIGKILL)
                await wait_exit(first.proc, 5)
                with contextlib.suppress(AgentDisconnectedError):
                    await call
                assert not gone(pgid), "nobody could kill the script of a SIGKILLed agent"
            with agent_process(sandbox.root, tmp_path / "agent2.log") as second:
                await server.wait_for_agent(me(), 10)
                assert gone(pgid)
                assert not groups_file.exists()
                assert f"killed process group {pgid} left by an earlier agent" in second.output()
            return pgid

    pgid = 0
    try:
        pgid = run(body())
    finally:
        if pgid:
            kill_group(pgid)
