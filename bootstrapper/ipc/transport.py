"""What both ends share around the pure protocol: socket addresses and reading/writing frames.

AF_UNIX addresses are capped at 104 bytes (macOS) or 108 (Linux), and a sandbox root can be deeper
than that. Where the OS offers `/proc/self/fd`, both ends therefore bind and connect through a
descriptor of the socket's directory, which also pins the directory that was checked; elsewhere a
path over the cap is a clear error rather than a truncated address.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bootstrapper.errors import IPCError
from bootstrapper.ipc import protocol

#: sizeof(sockaddr_un.sun_path), including the terminating NUL.
SUN_PATH_MAX = 104 if sys.platform == "darwin" else 108
_PROC_FD = Path("/proc/self/fd")


def open_dir(path: Path) -> int:
    """A descriptor of the socket's directory; a symlink in its place is refused, never followed."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise IPCError(f"cannot use {path} as the socket directory: {exc.strerror or exc}") from exc


def unix_address(dir_fd: int, path: Path) -> str:
    """The address to bind or connect for `path`, whose directory is open as `dir_fd`."""
    via_fd = _PROC_FD / str(dir_fd) / path.name
    if _PROC_FD.is_dir() and len(os.fsencode(via_fd)) < SUN_PATH_MAX:
        return str(via_fd)
    size = len(os.fsencode(path))
    if size < SUN_PATH_MAX:
        return str(path)
    raise IPCError(
        f"socket path {path} is {size} bytes, over the {SUN_PATH_MAX - 1}-byte limit of Unix sockets "
        "on this system; use a shorter root folder"
    )


async def read_frame(
    reader: asyncio.StreamReader,
    *,
    max_size: int = protocol.MAX_FRAME,
    frame_timeout: float,
    idle_timeout: float | None = None,
) -> protocol.Message | None:
    """The next message, or None at end of stream.

    Waiting for a frame to start is bounded by `idle_timeout` (None: forever; heartbeats find dead
    peers), but once its first byte arrived the whole frame must follow within `frame_timeout`, so a
    half frame that never ends cannot hold a connection. Raises `TimeoutError` or `ProtocolError`.
    """
    try:
        async with asyncio.timeout(idle_timeout):
            first = await reader.readexactly(1)
        async with asyncio.timeout(frame_timeout):
            length = protocol.frame_length(
                first + await reader.readexactly(protocol.HEADER_SIZE - 1), max_size
            )
            payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        return None
    return protocol.decode(payload)


async def write_frame(
    writer: asyncio.StreamWriter,
    message: protocol.Message,
    *,
    timeout: float,
    max_size: int = protocol.MAX_FRAME,
) -> None:
    """Send one message; a peer that stops reading cannot hold us longer than `timeout`."""
    writer.write(protocol.encode(message, max_size))
    async with asyncio.timeout(timeout):
        await writer.drain()
