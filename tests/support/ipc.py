"""Real parts for the ipc tests: the real agent process, scripts, raw and hostile clients."""

from __future__ import annotations

import asyncio
import concurrent.futures.thread  # noqa: F401 - imported before a fork: see below
import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from bootstrapper.ipc import protocol
from bootstrapper.ipc.server import Limits
from bootstrapper.ipc.transport import open_dir, unix_address

T = TypeVar("T")

#: Short enough that every defence fires within a test, long enough for a loaded CI machine.
FAST = Limits(hello_timeout=0.5, frame_timeout=0.5, heartbeat_interval=30.0, heartbeat_timeout=2.0)
#: A uid that exists nowhere as a real user (nobody), for the tests that run as root.
OTHER_UID = 65534


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """Run a test body in a fresh event loop, failing it (instead of hanging the suite) on a deadlock."""

    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


def me() -> int:
    return os.getuid()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def script(folder: Path, name: str, body: str, mode: int = 0o755) -> tuple[Path, str]:
    """A shell script and its sha256."""
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(mode)
    return path, sha256(path)


class AgentProcess:
    """The real `python -m bootstrapper agent --sandbox ROOT`, exactly as the sandbox platform spawns it."""

    def __init__(self, root: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        with log.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bootstrapper", "agent", "--sandbox", str(root)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                env={**os.environ, **(env or {})},
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(5)


@contextlib.contextmanager
def agent_process(root: Path, log: Path, env: dict[str, str] | None = None) -> Iterator[AgentProcess]:
    agent = AgentProcess(root, log, env)
    try:
        yield agent
    finally:
        agent.stop()


async def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """Wait for a child without blocking the event loop (the daemon must keep serving meanwhile)."""
    until = time.monotonic() + timeout
    while (rc := proc.poll()) is None:
        if time.monotonic() > until:
            raise TimeoutError(f"pid {proc.pid} still running after {timeout} s")
        await asyncio.sleep(0.02)
    return rc


async def wait_for_file(path: Path, timeout: float = 10.0) -> str:
    until = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        if time.monotonic() > until:
            raise TimeoutError(f"{path} did not appear within {timeout} s")
        await asyncio.sleep(0.02)
    return path.read_text().strip()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as fh:
        return fh.read().split()[2] == "Z"
    return False


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


# --- raw and hostile clients ------------------------------------------------------------------


def connect_blocking(sock_path: Path, timeout: float = 5.0) -> socket.socket:
    fd = open_dir(sock_path.parent)
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(unix_address(fd, sock_path))
    finally:
        os.close(fd)
    return sock


async def raw_connect(sock_path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = connect_blocking(sock_path)
    sock.setblocking(False)
    return await asyncio.open_unix_connection(sock=sock)


async def read_reply(reader: asyncio.StreamReader, timeout: float = 3.0) -> protocol.Message | None:
    """The one frame a refused peer gets before the daemon closes, or None when it just closed."""
    async with asyncio.timeout(timeout):
        try:
            header = await reader.readexactly(protocol.HEADER_SIZE)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        return protocol.decode(await reader.readexactly(protocol.frame_length(header)))


async def read_to_eof(reader: asyncio.StreamReader, timeout: float = 3.0) -> bytes:
    async with asyncio.timeout(timeout):
        try:
            return await reader.read()
        except ConnectionError:
            return b""


def frame(obj: bytes) -> bytes:
    return len(obj).to_bytes(4, "big") + obj


def _drop_to(uid: int, folder: Path) -> None:
    """In a forked child: start in `folder` (so no private folder above it need be searchable), then
    become `uid` for good."""
    os.chdir(folder)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def _fork(child: Callable[[int], None]) -> tuple[int, int]:
    """Fork a child that runs `child(write_fd)` and exits; returns its pid and the read end."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            os.close(r)
            child(w)
        except BaseException as exc:
            os.write(w, f"error {type(exc).__name__}: {exc}\n".encode())
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    return pid, r


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode()


async def connect_as(uid: int, sock_path: Path, payload: bytes) -> bytes:
    """Connect from a forked child that dropped to `uid` (root only); returns what it was sent."""

    def child(out: int) -> None:
        _drop_to(uid, sock_path.parent)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(sock_path.name)
            # A refused peer is closed at once, unread: its hello may meet a closed socket, while the
            # refusal already waits in the buffer to be read.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(payload)
            data = b""
            with contextlib.suppress(ConnectionResetError):  # Linux: we closed with our hello unread
                while chunk := sock.recv(65536):
                    data += chunk
        os.write(out, data.hex().encode())

    pid, r = _fork(child)
    text = await asyncio.to_thread(_read_all, r)
    _, status = await asyncio.to_thread(os.waitpid, pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, text
    return bytes.fromhex(text)


class Impostor:
    """A listener on the daemon's socket path that runs as another uid; it reports what it received."""

    def __init__(self, run_dir: Path, uid: int) -> None:
        def child(out: int) -> None:
            _drop_to(uid, run_dir)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.bind("ipc.sock")
                sock.listen()
                os.write(out, b"listening\n")
                sock.settimeout(20)
                conn, _ = sock.accept()
                conn.settimeout(5)
                data = b""
                with contextlib.suppress(OSError):
                    while chunk := conn.recv(65536):
                        data += chunk
                os.write(out, f"received {data.hex()}\n".encode())

        self.pid, self._out = _fork(child)
        line = b""
        while not line.endswith(b"\n"):
            chunk = os.read(self._out, 1)
            if not chunk:
                break
            line += chunk
        assert line == b"listening\n", line

    def report(self) -> str:
        """What the child saw, once it is done (blocks)."""
        text = _read_all(self._out)
        os.waitpid(self.pid, 0)
        return text.strip()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)


# --- other local users: an attacker's flood and an agent that is not root -----------------------
#
# These are forked, not executed: the interpreter lives in root's private home on the CI machine,
# where another uid cannot run it. Fork them before any event loop runs, and import beforehand
# what they use (a child that is no longer root cannot read the standard library either).


def _flood(held_max: int, seconds: float, max_connects: int, hello: bytes, out: int) -> None:
    """Keep `held_max` connections open (each says hello), replacing the oldest as fast as possible,
    for `seconds` or `max_connects` connects or until SIGTERM; "flooding" once they are open."""
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    counts = {"connected": 0, "busy": 0, "refused": 0, "failed": 0}
    held: list[socket.socket] = []
    said, until = False, time.monotonic() + seconds
    while not stop and time.monotonic() < until and counts["connected"] < max_connects:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect("ipc.sock")
        except BlockingIOError:
            counts["busy"] += 1
            sock.close()
            continue
        except ConnectionRefusedError:
            counts["refused"] += 1
            sock.close()
            continue
        except OSError:  # not listening yet
            counts["failed"] += 1
            sock.close()
            time.sleep(0.01)
            continue
        counts["connected"] += 1
        with contextlib.suppress(OSError):
            sock.send(hello)
        held.append(sock)
        if len(held) >= held_max:
            if not said:
                os.write(out, b"flooding\n")
                said = True
            held.pop(0).close()
    os.write(out, json.dumps(counts).encode() + b"\n")


class Flood:
    """A connection flood on the daemon's socket from another uid (root only), bounded in time and count."""

    def __init__(
        self, run_dir: Path, uid: int, held: int, seconds: float, max_connects: int = 2_000_000
    ) -> None:
        hello = protocol.encode(protocol.Hello((1,), "0.1.0", 1))

        def child(out: int) -> None:
            run_dir.mkdir(parents=True, exist_ok=True)  # the daemon may not have made it yet
            _drop_to(uid, run_dir)
            _flood(held, seconds, max_connects, hello, out)

        self.pid, self._out = _fork(child)
        self._lines = os.fdopen(self._out, "rb")

    def wait_flooding(self) -> None:
        """Blocks until `held` connections are open (the flood is real)."""
        line = self._lines.readline()
        assert line == b"flooding\n", line

    def stop(self) -> dict[str, int]:
        """End it and return its counts (blocks)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        out = self._lines.read().decode()
        self._lines.close()
        os.waitpid(self.pid, 0)
        counts: dict[str, int] = json.loads(out.strip().splitlines()[-1])
        return counts


class AgentAs:
    """The real agent as `uid`, which has no account, trusting only a root daemon as on a Mac (root only).

    It waits for `start()` before it dials; its log goes to `log`.
    """

    def __init__(self, uid: int, socket_path: Path, home: Path, log: Path) -> None:
        from bootstrapper.agent import Agent, AgentConfig, _main

        config = AgentConfig(
            socket_path, 0, f"user{uid}", str(home), "/tmp", trusted_uids=frozenset({0, uid})
        )
        self.log = log
        go_r, self._go = os.pipe()
        log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                os.close(self._go)
                _drop_to(uid, home)
                os.read(go_r, 1)
                stream = os.fdopen(log_fd, "w", buffering=1)
                fmt = "%(asctime)s agent %(levelname)s %(message)s"
                logging.basicConfig(level=logging.INFO, stream=stream, format=fmt, force=True)
                asyncio.run(_main(Agent(config)))
                code = 0
            except BaseException:
                traceback.print_exc(file=os.fdopen(log_fd, "w"))
            finally:
                os._exit(code)
        os.close(go_r)
        os.close(log_fd)
        self.returncode: int | None = None

    def start(self) -> None:
        os.write(self._go, b"g")
        os.close(self._go)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    async def wait(self, timeout: float) -> int:
        until = time.monotonic() + timeout
        while (code := self.poll()) is None:
            if time.monotonic() > until:
                raise TimeoutError(f"the agent (pid {self.pid}) still runs after {timeout} s")
            await asyncio.sleep(0.02)
        return code

    def stop(self) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.returncode = -signal.SIGKILL


class QueuedPeer:
    """A peer as `uid` (root only) whose connect and `payload` are both done before the daemon can
    accept: the constructor blocks the caller, and so its event loop, until then.

    `result()` is what it received and how the connection ended: "eof" when the daemon closed it
    cleanly (it had read what we sent), "reset" when Linux reports it closed with our bytes unread,
    "epipe" when it was gone before we could send.
    """

    def __init__(self, run_dir: Path, uid: int, payload: bytes) -> None:
        def child(out: int) -> None:
            _drop_to(uid, run_dir)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5)
                sock.connect("ipc.sock")
                ending = "eof"
                try:
                    sock.sendall(payload)
                except BrokenPipeError:
                    ending = "epipe"
                os.write(out, b"sent\n")
                data = b""
                try:
                    while chunk := sock.recv(65536):
                        data += chunk
                except ConnectionResetError:
                    ending = "reset"
            os.write(out, f"{data.hex()} {ending}\n".encode())

        self.pid, self._out = _fork(child)
        line = b""
        while not line.endswith(b"\n"):
            chunk = os.read(self._out, 1)
            if not chunk:
                break
            line += chunk
        assert line == b"sent\n", line

    def result(self) -> tuple[bytes, str]:
        """Blocks until the peer is done."""
        text = _read_all(self._out).strip()
        os.waitpid(self.pid, 0)
        data, _, ending = text.rpartition(" ")
        assert ending in ("eof", "reset", "epipe"), text
        return bytes.fromhex(data), ending


def fill_backlog(sock_path: Path) -> list[socket.socket]:
    """Connect until the listener's queue is full (Linux answers EAGAIN); the caller keeps them open."""
    held: list[socket.socket] = []
    fd = open_dir(sock_path.parent)
    try:
        address = unix_address(fd, sock_path)
        for _ in range(10_000):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                sock.connect(address)
            except BlockingIOError:
                sock.close()
                return held
            held.append(sock)
    finally:
        os.close(fd)
    raise AssertionError("the listener's queue never filled")
