"""The agent's side of the connection: dial the daemon, make sure it *is* the daemon, check in.

The agent runs whatever the daemon asks, so it must not check in with an impostor: the kernel's
peer credentials of the listening socket must name the expected uid (root on a Mac) before a single
byte is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from bootstrapper import __version__
from bootstrapper.errors import (
    DaemonAbsentError,
    DaemonBusyError,
    ImpostorError,
    IPCError,
    NotNeededError,
    ProtocolError,
)
from bootstrapper.ipc import protocol
from bootstrapper.ipc.peercred import PeerCred, peer_credentials
from bootstrapper.ipc.transport import open_dir, read_frame, unix_address, write_frame


@dataclass
class Channel:
    """A checked-in connection to the daemon."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    daemon: PeerCred
    version: int
    max_frame: int = protocol.MAX_FRAME
    frame_timeout: float = 10.0

    async def receive(self) -> protocol.Message | None:
        """The next message (waiting as long as it takes for one to start), None when the daemon left."""
        return await read_frame(self.reader, max_size=self.max_frame, frame_timeout=self.frame_timeout)

    async def send(self, message: protocol.Message, timeout: float = 10.0) -> None:
        await write_frame(self.writer, message, timeout=timeout, max_size=self.max_frame)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await self.writer.wait_closed()


async def check_in(
    socket_path: Path,
    daemon_uid: int,
    *,
    agent_version: str = __version__,
    versions: tuple[int, ...] = protocol.SUPPORTED_VERSIONS,
    timeout: float = 5.0,
    max_frame: int = protocol.MAX_FRAME,
) -> Channel:
    """Connect, verify the daemon's uid, say hello and return the channel once welcomed.

    Raises `DaemonAbsentError` when nobody listens, `ImpostorError` for a listener of the wrong uid,
    `IPCError` when the daemon refuses us, `ProtocolError` for a nonsensical answer.
    """
    loop = asyncio.get_running_loop()
    sock = _connect(socket_path)
    try:
        cred = _verified_daemon(sock, socket_path, daemon_uid)
        # The hello goes out on the bare socket: a daemon that refuses us closes without reading
        # it, and a failed send must not discard the refusal that is already waiting to be read.
        hello = protocol.encode(protocol.Hello(versions, agent_version, os.getpid()), max_frame)
        until = loop.time() + timeout
        with contextlib.suppress(OSError):  # TimeoutError included: the read below times out too
            async with asyncio.timeout_at(until):
                await loop.sock_sendall(sock, hello)
        reader, writer = await asyncio.open_unix_connection(sock=sock)
    except BaseException:
        sock.close()
        raise
    channel = Channel(reader, writer, cred, version=0, max_frame=max_frame, frame_timeout=timeout)
    return await _welcomed(channel, versions, until, timeout)


def _connect(socket_path: Path) -> socket.socket:
    """A non-blocking socket connected to the daemon, or `DaemonAbsentError` saying why not."""
    try:
        dir_fd = open_dir(socket_path.parent)
    except FileNotFoundError:
        raise DaemonAbsentError(f"the daemon is not listening: {socket_path.parent} does not exist") from None
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except OSError as exc:
        os.close(dir_fd)
        raise DaemonAbsentError(f"cannot make a socket to reach the daemon: {exc}") from exc
    sock.setblocking(False)
    try:
        # A Unix socket connects at once or not at all, so connect directly: asyncio would take
        # Linux's EAGAIN (the daemon's queue is full) for "in progress" and report a connection.
        sock.connect(unix_address(dir_fd, socket_path))
    except BaseException as exc:
        sock.close()
        if isinstance(exc, FileNotFoundError):
            raise DaemonAbsentError(f"the daemon is not listening on {socket_path}") from exc
        if isinstance(exc, ConnectionRefusedError):  # macOS refuses this way when the queue is full
            raise DaemonBusyError(
                f"nothing accepted the connection on {socket_path} (the daemon is not running, "
                "or its queue of connections is full)"
            ) from exc
        if isinstance(exc, BlockingIOError):
            raise DaemonBusyError(
                f"the daemon's queue of connections on {socket_path} is full (busy, or flooded)"
            ) from exc
        if isinstance(exc, OSError):
            raise DaemonAbsentError(f"cannot connect to {socket_path}: {exc}") from exc
        raise
    finally:
        os.close(dir_fd)
    return sock


async def _welcomed(channel: Channel, versions: tuple[int, ...], until: float, timeout: float) -> Channel:
    """The channel once the daemon welcomed us in a version we speak; closed and raised otherwise."""
    try:
        async with asyncio.timeout_at(until):
            reply = await channel.receive()
    except BaseException as exc:
        await channel.close()
        if isinstance(exc, TimeoutError):
            raise IPCError(f"the daemon did not welcome this agent within {timeout:g} s") from None
        if isinstance(exc, OSError):
            raise DaemonAbsentError(f"the daemon closed the connection: {exc}") from exc
        raise
    if isinstance(reply, protocol.Welcome) and reply.version in versions:
        channel.version = reply.version
        return channel
    await channel.close()
    if reply is None:
        raise DaemonAbsentError("the daemon closed the connection during check-in")
    if isinstance(reply, protocol.Refuse):
        if reply.reason.startswith(protocol.NOT_NEEDED):
            raise NotNeededError(f"the daemon does not need this agent: {reply.reason}")
        raise IPCError(f"the daemon refused this agent: {reply.reason}")
    raise ProtocolError(f"expected a welcome from the daemon, got {reply!r}")


def _verified_daemon(sock: socket.socket, socket_path: Path, daemon_uid: int) -> PeerCred:
    try:
        cred = peer_credentials(sock)
    except OSError as exc:
        raise DaemonAbsentError(f"cannot tell who listens on {socket_path}: {exc}") from exc
    if cred.uid != daemon_uid:
        raise ImpostorError(
            f"refusing the daemon at {socket_path}: it runs as uid {cred.uid}, expected uid {daemon_uid}"
        )
    return cred
