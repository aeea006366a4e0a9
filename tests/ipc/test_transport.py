from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from bootstrapper.errors import IPCError, ProtocolError
from bootstrapper.ipc import protocol, transport
from bootstrapper.ipc.client import check_in
from bootstrapper.ipc.server import AgentServer
from tests.support.ipc import FAST, me, run


def _long_socket(tmp_path: Path) -> Path:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    sock = deep / "run" / "ipc.sock"
    assert len(os.fsencode(sock)) >= transport.SUN_PATH_MAX
    return sock


def test_long_socket_path_works_through_the_directory_descriptor(tmp_path: Path) -> None:
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("binding through a directory descriptor needs /proc/self/fd")
    sock = _long_socket(tmp_path)

    async def body() -> None:
        async with AgentServer(sock, lambda uid: uid == me(), me(), limits=FAST) as server:
            channel = await check_in(sock, me())
            session = await server.wait_for_agent(me(), 2)
            assert session.pid == os.getpid()
            await channel.close()
        assert not sock.exists()

    run(body())


def test_long_socket_path_without_proc_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "_PROC_FD", tmp_path / "no-proc")
    sock = _long_socket(tmp_path)
    server = AgentServer(sock, lambda uid: True, me())
    with pytest.raises(
        IPCError, match=r"socket path .* bytes, over the 10\d-byte limit .* use a shorter root"
    ):
        run(server.start())
    assert not sock.exists()


def test_short_socket_path_is_used_as_is_without_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setattr(transport, "_PROC_FD", Path("/nonexistent-proc"))
    with tempfile.TemporaryDirectory(dir="/tmp") as short:
        sock = Path(short) / "r" / "ipc.sock"

        async def body() -> None:
            async with AgentServer(sock, lambda uid: True, me(), limits=FAST) as server:
                channel = await check_in(sock, me())
                await server.wait_for_agent(me(), 2)
                await channel.close()

        run(body())


def _reader(data: bytes, eof: bool = False) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


def test_half_frame_that_never_ends_hits_the_frame_deadline() -> None:
    async def body() -> None:
        reader = _reader(protocol.encode(protocol.Ping(1))[:6])
        with pytest.raises(TimeoutError):
            await transport.read_frame(reader, frame_timeout=0.1)

    run(body())


def test_idle_connection_waits_only_as_long_as_asked() -> None:
    async def body() -> None:
        with pytest.raises(TimeoutError):
            await transport.read_frame(_reader(b""), frame_timeout=5, idle_timeout=0.05)

    run(body())


def test_end_of_stream_mid_frame_is_a_disconnect_not_a_message() -> None:
    async def body() -> None:
        assert await transport.read_frame(_reader(b"\0\0", eof=True), frame_timeout=1) is None
        assert await transport.read_frame(_reader(b"", eof=True), frame_timeout=1) is None

    run(body())


def test_oversized_frame_is_refused_without_reading_its_body() -> None:
    async def body() -> None:
        with pytest.raises(ProtocolError, match="exceeds"):
            await transport.read_frame(_reader((2**31).to_bytes(4, "big")), frame_timeout=1)

    run(body())
