"""The booted sandbox's control channel: one Unix socket, one JSON line each way.

`serve` is `bootstrapper sandbox boot`: it boots the simulated launchd, answers `launchctl` and the
`sandbox login|logout|switch|reboot|shutdown|ps` requests, and shuts down on SIGTERM or Ctrl-C.
`request` is every client: it talks to the booted launchd when there is one, and otherwise does the
work itself under the state lock (see `launchd.py` for what "not booted" means).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bootstrapper.platform.sandbox.launchd import Launchd, Reply, SandboxStateError, socket_path, state_lock

#: How long a client waits for a launchd that is busy (another call holds the state lock).
BUSY_WAIT = 15.0
#: A reply can take a job's whole ExitTimeOut (bootout, logout); the socket waits this long.
REPLY_WAIT = 600.0
_MAX_LINE = 1 << 20


async def dispatch(launchd: Launchd, message: dict[str, Any]) -> Reply:
    """One request against a launchd, booted or not."""
    op = message.get("op")
    try:
        if op == "launchctl":
            return await launchd.launchctl([str(a) for a in message.get("argv", [])])
        if op in ("login", "switch", "logout"):
            user = str(message.get("user", ""))
            action = {"login": launchd.login, "switch": launchd.switch, "logout": launchd.logout}[op]
            return await action(user)
        if op == "console":
            return launchd.manage()
        if op == "ps":
            return Reply(0, json.dumps(launchd.ps()))
        if op == "scutil":
            from bootstrapper.platform.sandbox.launchd import scutil_console

            return Reply(
                0,
                scutil_console(
                    {"console": launchd.console, "users": launchd.users, "sessions": launchd.sessions}
                ),
            )
        if op in ("reboot", "shutdown"):
            return Reply(
                1,
                "",
                f"the sandbox at {launchd.root} is not booted: "
                f"start it with `bootstrapper sandbox boot {launchd.root}`\n",
            )
    except ValueError as exc:
        return Reply(2, "", f"{exc}\n")
    return Reply(64, "", f"unknown request {op!r}\n")


def request(root: Path, message: dict[str, Any]) -> Reply:
    """Ask the booted launchd, or, when the sandbox is not booted, do it here under the state lock."""
    deadline = time.monotonic() + BUSY_WAIT
    while True:
        reply = _ask(root, message)
        if reply is not None:
            return reply
        with state_lock(root, blocking=False) as mine:
            if mine:
                return asyncio.run(_offline(root, message))
        if time.monotonic() > deadline:
            return Reply(1, "", f"the sandbox's launchd at {root} did not answer within {BUSY_WAIT:g} s\n")
        time.sleep(0.05)


async def _offline(root: Path, message: dict[str, Any]) -> Reply:
    return await dispatch(Launchd(root, live=False), message)


def _address(path: Path) -> tuple[str, int | None]:
    """The socket address; a long root goes through /proc/self/fd (sockets have a ~108-byte limit)."""
    if len(os.fsencode(path)) < 100:
        return str(path), None
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{path.name}", fd


def _ask(root: Path, message: dict[str, Any]) -> Reply | None:
    path = socket_path(root)
    if not path.exists():
        return None
    try:
        address, fd = _address(path)
    except OSError:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(REPLY_WAIT)
        try:
            sock.connect(address)
        except (ConnectionRefusedError, FileNotFoundError):
            return None
        sock.sendall(json.dumps(message).encode("utf-8") + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
        if fd is not None:
            os.close(fd)
    try:
        answer = json.loads(data)
        return Reply(int(answer["rc"]), str(answer["out"]), str(answer["err"]))
    except (ValueError, KeyError, TypeError):
        return Reply(1, "", "the sandbox's launchd went away before it answered\n")


async def serve(root: Path, *, note: Callable[[str], None] = print) -> int:
    """Boot the sandbox and run it until `sandbox shutdown`, SIGTERM (0) or Ctrl-C (130)."""
    with state_lock(root, blocking=False) as mine:
        if not mine:
            raise SandboxStateError(
                f"the sandbox at {root} is already booted: "
                f"stop it with `bootstrapper sandbox shutdown {root}`"
            )
        return await _run(root, note)


class _Booted:
    """The running launchd and the requests that reach it over the control socket."""

    def __init__(self, launchd: Launchd) -> None:
        self.launchd = launchd
        self.lock = asyncio.Lock()
        self.wanted: asyncio.Queue[str] = asyncio.Queue()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            message = json.loads(line) if line else {}
            op = message.get("op") if isinstance(message, dict) else None
            if op in ("reboot", "shutdown"):
                reply = Reply(0, f"{op} under way\n")
                self.wanted.put_nowait(str(op))
            else:
                async with self.lock:
                    reply = await dispatch(self.launchd, message if isinstance(message, dict) else {})
            writer.write(json.dumps(reply.to_json()).encode("utf-8") + b"\n")
            await writer.drain()
        except (ValueError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def _listen(root: Path, booted: _Booted) -> tuple[asyncio.Server, Path]:
    path = socket_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Only whoever booted it may talk to it: a root launchd starts jobs as root.
    path.parent.chmod(0o700)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    address, fd = _address(path)
    server = await asyncio.start_unix_server(booted.handle, path=address, limit=_MAX_LINE)
    if fd is not None:
        os.close(fd)
    return server, path


async def _run(root: Path, note: Callable[[str], None]) -> int:
    loop = asyncio.get_running_loop()
    booted = _Booted(Launchd(root, live=True))
    if os.geteuid() != 0:
        note(f"not running as root: every user's jobs run as uid {os.getuid()} (you), not as their own uid")
    await booted.launchd.boot()
    server, path = await _listen(root, booted)
    loop.add_signal_handler(signal.SIGTERM, booted.wanted.put_nowait, "shutdown")
    loop.add_signal_handler(signal.SIGINT, booted.wanted.put_nowait, "interrupt")
    note(f"sandbox {root} booted; console: {booted.launchd.console}")
    try:
        while True:
            why = await booted.wanted.get()
            async with booted.lock:
                await booted.launchd.halt()
                if why != "reboot":
                    break
                booted.launchd.journal("reboot", result="rebooting")
                note("rebooting")
                booted.launchd = _fresh(booted.launchd)
                await booted.launchd.boot()
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        loop.remove_signal_handler(signal.SIGINT)
        server.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    note("sandbox shut down")
    return 130 if why == "interrupt" else 0


def _fresh(old: Launchd) -> Launchd:
    """A reboot reads everything back from disk, like a Mac coming up again."""
    old.save()
    return Launchd(old.root, live=True)
