"""The daemon's side: where agents check in, and the sessions through which it sends them requests.

The daemon cannot dial an agent (there may be several users, or none), so each agent connects here
and the connection is turned around. The socket is 0666 inside a 0755 directory owned by the daemon:
anyone may connect, and the kernel's peer credentials decide who is served. Each agent is one
`Session` with at most one request in flight, every request has a deadline, and an agent that misses
it is dropped: a stuck user session can never stall the daemon.

Connections are accepted here, not by asyncio's server, so that the kernel's peer credentials are
checked the moment a connection is accepted: a user who may not check in is told so and closed at
once, before anything is read and before any task or buffer exists for it, so a flood from another
local user costs the daemon one accept and one close per connection. A user who may check in holds
at most `Limits.max_per_uid` connections at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import os
import socket
import stat
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from bootstrapper import __version__
from bootstrapper.errors import (
    AgentDisconnectedError,
    AgentUnresponsiveError,
    IPCError,
    NoAgentError,
    ProtocolError,
)
from bootstrapper.ipc import protocol
from bootstrapper.ipc.peercred import PeerCred, executable_of, peer_credentials
from bootstrapper.ipc.transport import open_dir, read_frame, unix_address, write_frame

log = logging.getLogger("bootstrapper.ipc")

#: A run_script's deadline is its timeout plus this: time for the agent to hash, kill and reply.
SCRIPT_DEADLINE_MARGIN = 10.0
#: How long launching an agent may take (launchctl bootstrap and kickstart), apart from its check-in.
AGENT_START_TIMEOUT = 60.0
_WRITE_TIMEOUT = 5.0
#: Connections accepted per wake-up: a flood cannot keep the loop from serving the agent.
_ACCEPTS_PER_WAKEUP = 128
#: After EMFILE and the like, accepting pauses this long (the queue holds meanwhile).
_ACCEPT_PAUSE = 0.5
#: A refused user's connections are logged once per this many seconds, with a count.
_REFUSED_LOG_EVERY = 60.0
#: What is drained from an allowed peer that is refused, so it can read why before the close.
_DRAIN_BYTES = 1 << 16


@dataclass(frozen=True)
class Limits:
    """The daemon's defences, in seconds and counts; tests shorten them."""

    hello_timeout: float = 5.0
    frame_timeout: float = 5.0
    heartbeat_interval: float = 15.0
    heartbeat_timeout: float = 5.0
    max_unauthenticated: int = 64
    #: Connections one allowed uid may hold at once (its session included); more are closed at once.
    max_per_uid: int = 4
    #: The kernel's queue of connections not yet accepted (capped by the system: somaxconn).
    listen_backlog: int = 1024
    max_frame: int = protocol.MAX_FRAME


class Session:
    """One checked-in agent. Requests are sent one at a time; others wait their turn."""

    def __init__(
        self,
        server: AgentServer,
        cred: PeerCred,
        hello: protocol.Hello,
        version: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.uid = cred.uid
        self.pid = cred.pid
        self.agent_version = hello.agent_version
        self.version = version
        self.close_reason: str | None = None
        self._server = server
        self._limits = server.limits
        self._reader = reader
        self._writer = writer
        self._lock = asyncio.Lock()
        self._pending: dict[int, tuple[type, asyncio.Future[Any]]] = {}
        self._ids = 0
        self._closed = asyncio.Event()
        self._heartbeat: asyncio.Task[None] | None = None
        #: The ends of `start_script` scripts, by step id: told by the agent whenever they come.
        self._exits: dict[str, asyncio.Future[protocol.Exited]] = {}

    def __repr__(self) -> str:
        return f"agent of uid {self.uid} (pid {self.pid})"

    @property
    def alive(self) -> bool:
        return self.close_reason is None

    async def call(
        self, op: str, args: Mapping[str, Any] | None = None, deadline: float = 30.0
    ) -> protocol.Response:
        """Send `op` and return the agent's response; the deadline counts from when it is sent.

        Raises `AgentUnresponsiveError` (the agent is dropped) when the deadline passes,
        `AgentDisconnectedError` when the agent goes away first, `ProtocolError` for a bad op.
        """
        return await self.request(protocol.make_op(op, args or {}), deadline)

    async def run_script(
        self,
        step_id: str,
        path: str | os.PathLike[str],
        sha256: str,
        args: tuple[str, ...] | list[str] = (),
        timeout: float = 600.0,
        deadline: float | None = None,
        env: Mapping[str, str] | None = None,
        *,
        background: bool = False,
    ) -> protocol.Response:
        """Have the agent run a verified script as its user; a failed script is a response, not an error.

        `env` (the step's secrets) reaches that script only, and its values are masked in the output.
        With `background` the agent answers as soon as the script runs (it does not hold the agent's
        one request slot) and `script_exit(step_id)` tells how it ended; it gets no `env`.
        """
        fields: dict[str, Any] = {
            "step_id": step_id,
            "path": os.fspath(path),
            "sha256": sha256,
            "args": list(args),
            "timeout": timeout,
        }
        if background:
            if env:
                raise ValueError("a background script gets no secrets: the daemon does not wait for it")
            op = protocol.make_op("start_script", fields)
            self._exit_future(step_id)
            return await self.request(op, SCRIPT_DEADLINE_MARGIN)
        op = protocol.make_op("run_script", {**fields, **({"env": dict(env)} if env else {})})
        return await self.request(op, deadline if deadline is not None else timeout + SCRIPT_DEADLINE_MARGIN)

    async def script_exit(self, step_id: str) -> protocol.Exited:
        """How a started script ended; `AgentDisconnectedError` when the agent goes first."""
        return await asyncio.shield(self._exit_future(step_id))

    def _exit_future(self, step_id: str) -> asyncio.Future[protocol.Exited]:
        if (future := self._exits.get(step_id)) is None:
            future = self._exits[step_id] = asyncio.get_running_loop().create_future()
            if not self.alive:
                _fail(future, AgentDisconnectedError(f"{self} is gone ({self.close_reason})"))
        return future

    async def ping(self, deadline: float = 5.0) -> protocol.Response:
        return await self.request(protocol.PingOp(), deadline)

    async def shutdown(self, deadline: float = 5.0) -> None:
        """Ask the agent to exit; it answers first, then the session is closed either way."""
        try:
            await self.request(protocol.ShutdownOp(), deadline)
        finally:
            await self.close("shut down by the daemon")

    async def request(self, op: protocol.Op, deadline: float) -> protocol.Response:
        if not (math.isfinite(deadline) and deadline > 0):
            raise ValueError(f"a request deadline is a positive number of seconds, got {deadline!r}")
        async with self._lock:
            message = protocol.Request(self._next_id(), op, deadline)
            reply = await self._exchange(message, message.id, protocol.Response, deadline, op.name)
        assert isinstance(reply, protocol.Response)
        return reply

    async def close(self, reason: str = "closed by the daemon") -> None:
        self._abort(reason, graceful=True)
        await self.wait_closed()

    async def wait_closed(self) -> None:
        await self._closed.wait()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await self._writer.wait_closed()

    # --- internals --------------------------------------------------------------------------------

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    async def _exchange(
        self, message: protocol.Message, msg_id: int, kind: type, deadline: float, what: str
    ) -> protocol.Message:
        """Send `message` and wait for its answer (requests hold the lock: one in flight; heartbeats
        go beside them, each frame one write, so they never interleave)."""
        if not self.alive:
            raise AgentDisconnectedError(f"{self} is gone ({self.close_reason}); {what} was not sent")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = (kind, future)
        try:
            async with asyncio.timeout(deadline):
                await write_frame(self._writer, message, timeout=deadline, max_size=self._limits.max_frame)
                reply: protocol.Message = await future
        except TimeoutError:
            reason = f"did not answer {what} within {deadline:g} s"
            self._abort(f"unresponsive: {reason}", graceful=False, warn=True)
            raise AgentUnresponsiveError(f"{self} {reason}; dropped it") from None
        except asyncio.CancelledError:
            # The agent may still be working on it: a fresh check-in is the only known state.
            self._abort(f"{what} was cancelled by the daemon", graceful=False)
            raise
        except (ConnectionError, OSError) as exc:
            self._abort(f"connection failed: {exc}", graceful=False)
            raise AgentDisconnectedError(f"{self} disconnected before {what} was answered") from exc
        finally:
            self._pending.pop(msg_id, None)
        return reply

    async def _serve(self) -> None:
        """Read the agent's frames until it goes away; runs in the connection's task."""
        self._heartbeat = asyncio.create_task(self._beat())
        reason, warn = "disconnected", False
        try:
            while True:
                message = await read_frame(
                    self._reader, max_size=self._limits.max_frame, frame_timeout=self._limits.frame_timeout
                )
                if message is None:
                    break
                self._deliver(message)
        except ProtocolError as exc:
            reason, warn = f"broke protocol: {exc}", True
            with contextlib.suppress(OSError, TimeoutError):
                await write_frame(self._writer, protocol.Refuse(str(exc)), timeout=1.0)
        except TimeoutError:
            reason, warn = "sent a partial frame and stalled", True
        except OSError as exc:
            reason = f"connection failed: {exc}"
        finally:
            self._abort(reason, graceful=True, warn=warn)

    def _deliver(self, message: protocol.Message) -> None:
        if isinstance(message, protocol.Exited):
            ended = self._exit_future(message.step_id)
            if not ended.done():
                ended.set_result(message)
            return
        if not isinstance(message, protocol.Response | protocol.Pong):
            raise ProtocolError(f"unexpected {type(message).__name__.lower()} message from an agent")
        kind, future = self._pending.get(message.id, (None, None))
        if future is None or not isinstance(message, kind):  # type: ignore[arg-type]
            raise ProtocolError(f"{type(message).__name__.lower()} for unknown id {message.id}")
        if not future.done():
            future.set_result(message)

    async def _beat(self) -> None:
        """Ping the agent all along, so that a dead, stopped or wedged one is dropped early.

        Also while a request runs: the agent answers heartbeats beside its one request (a script
        may run for an hour), so a stopped agent is found within one interval and timeout, not at
        the request's deadline. A heartbeat is not a request and does not take the request slot.
        """
        while self.alive:
            await asyncio.sleep(self._limits.heartbeat_interval)
            ping = protocol.Ping(self._next_id())
            with contextlib.suppress(IPCError):
                await self._exchange(
                    ping, ping.id, protocol.Pong, self._limits.heartbeat_timeout, "a heartbeat"
                )

    def _abort(self, reason: str, *, graceful: bool, warn: bool = False) -> None:
        """Close now: every waiting caller gets a clear error, and the registry forgets us."""
        if not self.alive:
            return
        self.close_reason = reason
        log.log(logging.WARNING if warn else logging.INFO, "closed %s: %s", self, reason)
        for _, future in self._pending.values():
            _fail(future, AgentDisconnectedError(f"{self} went away: {reason}"))
        self._pending.clear()
        for exit_future in self._exits.values():
            _fail(exit_future, AgentDisconnectedError(f"{self} went away: {reason}"))
        if graceful:
            self._writer.close()
        else:
            self._writer.transport.abort()
        if self._heartbeat is not None and self._heartbeat is not asyncio.current_task():
            self._heartbeat.cancel()
        self._server._forget(self)
        self._closed.set()


class AgentServer:
    """The Unix socket server where agents check in; an async context manager.

    `allowed_uid(uid)` says whether a peer (as the kernel reports it) may check in: the console user
    on a Mac, the tests' own uid in the sandbox. `daemon_uid_owner` is the uid that must own the
    socket's directory: 0 on a Mac, the daemon's own uid in the sandbox. `agent_executable` may name a
    folder (the bundled Python framework, whose launcher re-executes a binary inside it). When it is
    set, a peer must also be running that executable, or one inside that folder.
    """

    def __init__(
        self,
        socket_path: Path,
        allowed_uid: Callable[[int], bool],
        daemon_uid_owner: int,
        *,
        agent_executable: str | os.PathLike[str] | None = None,
        limits: Limits | None = None,
        daemon_version: str = __version__,
    ) -> None:
        self.socket_path = Path(socket_path)
        self.limits = limits or Limits()
        self._allowed_uid = allowed_uid
        self._owner = daemon_uid_owner
        self._executable = os.path.realpath(agent_executable) if agent_executable is not None else None
        self._daemon_version = daemon_version
        self._sessions: dict[int, Session] = {}
        self._waiters: dict[int, set[asyncio.Future[Session]]] = {}
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter | None] = {}
        self._held: Counter[int] = Counter()
        self._unauthenticated = 0
        #: (uid, why) → when it was last logged, and how many refusals since.
        self._refused: dict[tuple[int, str], tuple[float, int]] = {}
        self._listener: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._resume: asyncio.TimerHandle | None = None
        self._dir_fd: int | None = None
        self._identity: tuple[int, int] | None = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def sessions(self) -> dict[int, Session]:
        """The live sessions by uid (a copy)."""
        return dict(self._sessions)

    def session(self, uid: int) -> Session | None:
        return self._sessions.get(uid)

    @property
    def open_connections(self) -> dict[int, int]:
        """The connections held now (in check-in or checked in) by uid; refused ones are never held."""
        return {uid: n for uid, n in self._held.items() if n}

    async def wait_for_agent(self, uid: int, timeout: float) -> Session:
        """The live session of `uid`, waiting up to `timeout` s for one to check in."""
        if (session := self._sessions.get(uid)) is not None:
            return session
        future: asyncio.Future[Session] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(uid, set())
        waiters.add(future)
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise NoAgentError(f"no agent checked in for uid {uid} within {timeout:g} s") from None
        finally:
            waiters.discard(future)

    async def start(self) -> None:
        """Prepare the directory, replace a stale socket safely, bind and listen."""
        directory = self.socket_path.parent
        directory.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o755)
        dir_fd = open_dir(directory)
        try:
            _check_dir(dir_fd, directory, self._owner)
            _clear_stale(dir_fd, self.socket_path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(unix_address(dir_fd, self.socket_path))
                name = self.socket_path.name
                os.chmod(name, 0o666, dir_fd=dir_fd)  # noqa: S103 - any user may dial; peer credentials decide
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                self._identity = (st.st_dev, st.st_ino)
                sock.setblocking(False)
                sock.listen(self.limits.listen_backlog)
                self._loop = asyncio.get_running_loop()
                self._loop.add_reader(sock.fileno(), self._accept_ready)
                self._listener = sock
            except BaseException:
                sock.close()
                raise
        except BaseException:
            os.close(dir_fd)
            raise
        self._dir_fd = dir_fd
        log.info("listening for agents on %s", self.socket_path)

    async def close(self) -> None:
        """Stop listening, close every session and remove our socket (only if it is still ours)."""
        self._stop_listening()
        for session in list(self._sessions.values()):
            session._abort("the daemon is shutting down", graceful=True)
        for waiters in self._waiters.values():
            for future in waiters:
                _fail(future, IPCError("the agent server closed"))
        # Aborting the transports ends every connection's task by itself; cancelling is the last resort.
        for writer in self._connections.values():
            if writer is not None:
                writer.transport.abort()
        if self._connections:
            _, late = await asyncio.wait(list(self._connections), timeout=1.0)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for (uid, why), (_, count) in self._refused.items():
            if count:
                log.warning("refused %d more connection(s) from uid %d: %s", count, uid, why)
        self._refused.clear()
        if self._dir_fd is not None:
            with contextlib.suppress(OSError):
                st = os.stat(self.socket_path.name, dir_fd=self._dir_fd, follow_symlinks=False)
                if (st.st_dev, st.st_ino) == self._identity:
                    os.unlink(self.socket_path.name, dir_fd=self._dir_fd)
            os.close(self._dir_fd)
            self._dir_fd = None

    # --- connections ------------------------------------------------------------------------------

    def _stop_listening(self) -> None:
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        if self._listener is not None:
            assert self._loop is not None
            self._loop.remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None

    def _accept_ready(self) -> None:
        """Accept what is queued (a bounded number per wake-up) and decide on each at once."""
        listener, loop = self._listener, self._loop
        assert listener is not None and loop is not None
        for _ in range(_ACCEPTS_PER_WAKEUP):
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno == errno.ECONNABORTED:
                    continue
                # Out of descriptors or memory: stop accepting for a moment (the kernel queues).
                log.warning("cannot accept agent connections for now: %s", exc.strerror or exc)
                loop.remove_reader(listener.fileno())
                self._resume = loop.call_later(_ACCEPT_PAUSE, self._resume_accepting)
                return
            self._admit(conn)

    def _resume_accepting(self) -> None:
        self._resume = None
        if self._listener is not None and self._loop is not None:
            self._loop.add_reader(self._listener.fileno(), self._accept_ready)

    def _admit(self, conn: socket.socket) -> None:
        """Refuse a peer the kernel names as another user, or one over its limits, before any read."""
        try:
            conn.setblocking(False)
            cred = peer_credentials(conn)
        except OSError as exc:
            log.warning("refused a connection: cannot read its peer credentials: %s", exc)
            conn.close()
            return
        if not self._allowed_uid(cred.uid):
            self._log_refused(cred, "not an allowed user")
            _refuse_now(conn, protocol.not_needed(cred.uid))
            return
        if (held := self._held[cred.uid]) >= self.limits.max_per_uid:
            self._log_refused(cred, f"it holds {held} connections already")
            _refuse_now(conn, f"uid {cred.uid} has {held} connections open already; try again later")
            return
        if self._unauthenticated >= self.limits.max_unauthenticated:
            log.debug("dropped a connection: %d are already waiting to authenticate", self._unauthenticated)
            conn.close()
            return
        assert self._loop is not None
        self._held[cred.uid] += 1
        self._unauthenticated += 1
        task = self._loop.create_task(self._connection(conn, cred))
        self._connections[task] = None

    def _log_refused(self, cred: PeerCred, why: str) -> None:
        """The first refusal of a uid (for a reason) is logged, then a count once a minute at most."""
        now = time.monotonic()
        key = (cred.uid, why)
        last, count = self._refused.get(key, (-math.inf, 0))
        if now - last < _REFUSED_LOG_EVERY:
            self._refused[key] = (last, count + 1)
            return
        more = f" (and {count} more since the last report)" if count else ""
        log.warning("refused a connection from uid %d (pid %s): %s%s", cred.uid, cred.pid, why, more)
        if len(self._refused) >= 1024:
            self._refused.clear()
        self._refused[key] = (now, 0)

    async def _connection(self, conn: socket.socket, cred: PeerCred) -> None:
        task = asyncio.current_task()
        assert task is not None
        counted = True  # among the unauthenticated
        writer: asyncio.StreamWriter | None = None
        try:
            try:
                reader, writer = await asyncio.open_unix_connection(sock=conn)
            except OSError:
                conn.close()
                return
            self._connections[task] = writer
            try:
                session = await self._handshake(cred, reader, writer)
            finally:
                self._unauthenticated -= 1
                counted = False
            if session is None:
                return
            if self._register(session):
                await session._serve()
        except Exception:
            log.exception("unexpected error on an agent connection")
        finally:
            # Whatever ended us (a refusal closes gracefully, a cancellation does not), nothing stays open.
            if writer is not None and not writer.transport.is_closing():
                writer.transport.abort()
            if counted:
                self._unauthenticated -= 1
            self._held[cred.uid] -= 1
            if not self._held[cred.uid]:
                del self._held[cred.uid]
            self._connections.pop(task, None)

    async def _handshake(
        self, cred: PeerCred, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Session | None:
        who = f"uid {cred.uid} (pid {cred.pid})"
        if self._executable is not None:
            exe = _executable(cred.pid)
            if exe is None or not (exe == self._executable or exe.startswith(self._executable + os.sep)):
                log.warning("refused a connection from %s: it runs %s, not the agent", who, exe)
                await self._refuse(reader, writer, "this program is not the bootstrapper agent")
                return None
        try:
            async with asyncio.timeout(self.limits.hello_timeout):
                hello = await read_frame(
                    reader, max_size=self.limits.max_frame, frame_timeout=self.limits.hello_timeout
                )
        except TimeoutError:
            log.info("dropped a connection from %s: no hello within %g s", who, self.limits.hello_timeout)
            writer.transport.abort()
            return None
        except ProtocolError as exc:
            log.warning("refused a connection from %s: %s", who, exc)
            await self._refuse(reader, writer, str(exc))
            return None
        except OSError:
            writer.transport.abort()
            return None
        if hello is None:
            writer.transport.abort()
            return None
        if not isinstance(hello, protocol.Hello):
            await self._refuse(
                reader, writer, f"expected a hello, got a {type(hello).__name__.lower()} message"
            )
            return None
        version = protocol.negotiate(hello.versions)
        if version is None:
            offered = ", ".join(map(str, hello.versions))
            await self._refuse(
                reader,
                writer,
                f"no common protocol version: agent speaks {offered}, daemon {protocol.SUPPORTED_VERSIONS}",
            )
            return None
        if (live := self._sessions.get(cred.uid)) is not None and live.alive:
            # One agent per user: a second one must not take over a live session (and kill its
            # request in flight). It may once the first is gone or has missed its heartbeats.
            log.info("refused a second agent of uid %d (pid %s): %s is checked in", cred.uid, cred.pid, live)
            await self._refuse(
                reader,
                writer,
                f"another agent of uid {cred.uid} (pid {live.pid}) is checked in; try again later",
            )
            return None
        try:
            await write_frame(writer, protocol.Welcome(version, self._daemon_version), timeout=_WRITE_TIMEOUT)
        except (OSError, TimeoutError):
            writer.transport.abort()
            return None
        return Session(self, cred, hello, version, reader, writer)

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reason: str) -> None:
        """Tell the peer why, then close; a peer that does not read cannot hold us up.

        Only an allowed user gets here. What it sent and we did not read is drained first (briefly,
        and at most 64 KiB): closing a socket with unread input resets the connection, and the peer
        would lose the reason before reading it.
        """
        try:
            await write_frame(writer, protocol.Refuse(reason), timeout=1.0)
            if writer.can_write_eof():
                writer.write_eof()
            drained = 0
            with contextlib.suppress(TimeoutError, OSError):
                async with asyncio.timeout(0.2):
                    while drained < _DRAIN_BYTES and (chunk := await reader.read(_DRAIN_BYTES)):
                        drained += len(chunk)
            writer.close()
        except (OSError, TimeoutError):
            writer.transport.abort()

    def _register(self, session: Session) -> bool:
        """Make `session` the uid's agent, unless another one checked in meanwhile and is alive."""
        old = self._sessions.get(session.uid)
        if old is not None and old.alive:
            session._abort(f"{old} is checked in already", graceful=True)
            return False
        self._sessions[session.uid] = session
        log.info("%s checked in (agent %s, protocol %d)", session, session.agent_version, session.version)
        for future in self._waiters.pop(session.uid, set()):
            if not future.done():
                future.set_result(session)
        return True

    def _forget(self, session: Session) -> None:
        if self._sessions.get(session.uid) is session:
            del self._sessions[session.uid]


async def ensure_agent(
    server: AgentServer,
    uid: int,
    start: Callable[[], Awaitable[None]],
    timeout: float,
    *,
    start_timeout: float = AGENT_START_TIMEOUT,
) -> Session:
    """The agent session of `uid`; when none is checked in, `start()` it, then wait `timeout` for it.

    `start` is the platform's way to launch the agent (`launchctl kickstart`, or the sandbox's spawn),
    bounded on its own: a slow start (a busy Mac) must not eat the new agent's time to check in.
    """
    if (session := server.session(uid)) is not None and session.alive:
        return session
    try:
        async with asyncio.timeout(start_timeout):
            await start()
    except TimeoutError:
        raise NoAgentError(f"starting the agent for uid {uid} took longer than {start_timeout:g} s") from None
    try:
        return await server.wait_for_agent(uid, timeout)
    except NoAgentError:
        raise NoAgentError(
            f"the agent for uid {uid} was started but did not check in within {timeout:g} s"
        ) from None


def _refuse_now(conn: socket.socket, reason: str | protocol.Refuse) -> None:
    """Say why in one non-blocking send (a fresh socket has room for it), close, read nothing."""
    refusal = reason if isinstance(reason, protocol.Refuse) else protocol.Refuse(reason)
    with contextlib.suppress(OSError):
        conn.send(protocol.encode(refusal))
    conn.close()


def _check_dir(dir_fd: int, path: Path, owner: int) -> None:
    st = os.fstat(dir_fd)
    if st.st_uid != owner:
        raise IPCError(f"{path} is owned by uid {st.st_uid}, expected {owner}; remove it and start again")
    if stat.S_IMODE(st.st_mode) != 0o755:
        os.fchmod(dir_fd, 0o755)


def _clear_stale(dir_fd: int, path: Path) -> None:
    """Remove a socket left by a daemon that died; anything else at the path is refused."""
    try:
        st = os.stat(path.name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise IPCError(f"refusing to replace {path}: it is a {_kind(st.st_mode)}, not a socket; remove it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(unix_address(dir_fd, path))
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("removing the stale socket %s", path)
        os.unlink(path.name, dir_fd=dir_fd)
        return
    except OSError as exc:
        raise IPCError(f"cannot tell whether {path} is in use: {exc}") from exc
    finally:
        probe.close()
    raise IPCError(f"another daemon is already listening on {path}")


def _executable(pid: int | None) -> str | None:
    exe = executable_of(pid) if pid else None
    return os.path.realpath(exe) if exe is not None else None


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "regular file"
    return "special file"


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    """Fail a waiting caller's future. It counts as seen at once: the caller may already have given up
    on it (its send failed, its deadline passed), and asyncio would log it as never retrieved."""
    if not future.done():
        future.set_exception(error)
        future.exception()
