"""The per-user agent (`bootstrapper agent`): checks in with the daemon and runs its user steps.

launchd starts it in the user's session, so it already is the user: it never changes identity. It
serves one request at a time, re-checks every script right before running it (the file may have
changed since the daemon verified it), and when the daemon is absent or restarts it dials again with
capped backoff. A `shutdown` request or SIGTERM ends it cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import pwd
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bootstrapper import process
from bootstrapper.atomic import write_json_atomic
from bootstrapper.engine.trust import untrusted_reason
from bootstrapper.errors import (
    CommandError,
    DaemonAbsentError,
    DaemonBusyError,
    IPCError,
    NotNeededError,
    ProtocolError,
    ScriptRefusedError,
    UsageError,
)
from bootstrapper.fetch.redact import Redactor
from bootstrapper.ipc import protocol
from bootstrapper.ipc.client import Channel, check_in
from bootstrapper.paths import Paths

log = logging.getLogger("bootstrapper.agent")

#: `_CS_DARWIN_USER_TEMP_DIR` from <unistd.h>: the per-user temporary folder launchd gives a session.
_CS_DARWIN_USER_TEMP_DIR = 65537


@dataclass(frozen=True)
class AgentConfig:
    socket: Path
    daemon_uid: int
    user: str
    home: str
    tmpdir: str
    backoff_initial: float = 0.1
    backoff_max: float = 5.0
    #: Quick tries on a full queue of connections before one usual backoff sleep.
    busy_burst: int = 100
    timeout: float = 10.0
    trusted_uids: frozenset[int] = field(default_factory=frozenset)
    #: The system root scripts see as BOOTSTRAPPER_ROOT: "/" on a Mac, the sandbox folder otherwise.
    root: str = "/"

    @property
    def groups_file(self) -> Path:
        """Where the script groups now running are listed, for the next agent to reap after a SIGKILL:
        the session's private temporary folder, or the (sandbox) home when that is the shared /tmp."""
        folder = self.home if self.tmpdir.rstrip("/") in ("/tmp", "/private/tmp") else self.tmpdir  # noqa: S108
        return Path(folder) / ".bootstrapper-agent-groups.json"

    @classmethod
    def for_current_user(cls, socket: Path, daemon_uid: int, sandbox: Path | None = None) -> AgentConfig:
        """Identity from the user database, not from the environment, which launchd may leave thin.

        In a sandbox the user's home is `<sandbox>/Users/<name>`, so user scripts rehearsed there
        never touch the real home folder, and its users (`sandbox login alice`, uid 501) are found in
        the sandbox's own user list: this machine need not have an account for their uid.
        """
        uid = os.getuid()
        name = _sandbox_account(sandbox, uid) if sandbox is not None else None
        if name is None:
            try:
                entry = pwd.getpwuid(uid)
            except KeyError:
                raise UsageError(
                    f"uid {uid} has no account on this machine: the agent runs in a user's login session"
                ) from None
            name, home = entry.pw_name, entry.pw_dir
        if sandbox is not None:
            sandbox_home = sandbox / "Users" / name
            sandbox_home.mkdir(parents=True, exist_ok=True)
            home = str(sandbox_home)
        return cls(
            socket=socket,
            daemon_uid=daemon_uid,
            user=name,
            home=home,
            tmpdir=_user_tmpdir(),
            trusted_uids=frozenset({0, uid, daemon_uid}),
            root=str(sandbox) if sandbox is not None else "/",
        )


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self._env = {
            "HOME": config.home,
            "USER": config.user,
            "LOGNAME": config.user,
            "TMPDIR": config.tmpdir,
            "BOOTSTRAPPER_ROOT": config.root,
        }
        # Scripts start in the system's root, as launchd starts them: `/` on a Mac, the sandbox's root
        # in a sandbox; never wherever the agent happened to be started.
        self._cwd = Path(config.root)
        self._groups: dict[int, str | None] = {}

    # --- the groups of running scripts, as process.watching reports them ------------------------

    def started(self, group: process.Group) -> None:
        self._groups[group.pgid] = group.started
        self._save_groups()

    def ended(self, group: process.Group) -> None:
        self._groups.pop(group.pgid, None)
        self._save_groups()

    def _save_groups(self) -> None:
        path = self.config.groups_file
        try:
            if self._groups:
                doc = [{"pgid": pgid, "started": started} for pgid, started in self._groups.items()]
                write_json_atomic(path, doc, mode=0o600)
            else:
                path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot record the running scripts in %s: %s", path, exc)

    async def reap_leftovers(self) -> None:
        """Kill the scripts an agent before us (SIGKILLed, or crashed) left running: the daemon runs an
        interrupted user step again, and it must never run beside its first copy."""
        path = self.config.groups_file
        try:
            doc = json.loads(path.read_text())
            groups = [process.Group(int(g["pgid"]), g.get("started")) for g in doc]
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("ignoring %s: %s", path, exc)
            groups = []
        for group in groups:
            if await process.reap_group(group):
                log.warning("killed process group %d left by an earlier agent", group.pgid)
        path.unlink(missing_ok=True)

    async def serve_forever(self) -> None:
        """Check in, serve, and dial again whenever the connection ends, until told to shut down.

        Nothing that can happen while dialling ends the agent: a daemon that is absent, busy (its
        queue full, perhaps flooded by another user), refusing or not who it should be is tried
        again after a capped, jittered backoff. Each problem is logged once, not on every try.
        """
        await self.reap_leftovers()
        delay = self.config.backoff_initial
        last_problem = ""
        busy_tries = 0
        while True:
            try:
                channel = await check_in(
                    self.config.socket, self.config.daemon_uid, timeout=self.config.timeout
                )
            except NotNeededError as exc:
                log.info("%s: exiting", exc)
                return
            except (IPCError, OSError) as exc:
                # "Waiting for the daemon" is one state however it shows (no socket yet, refused, a
                # full queue): said once until a check-in. Other problems are said when they change.
                problem = "absent" if isinstance(exc, DaemonAbsentError) else str(exc)
                if problem != last_problem:
                    if isinstance(exc, DaemonAbsentError):
                        log.info("waiting for the daemon: %s", exc)
                    else:
                        log.warning("%s; trying again", exc)
                last_problem = problem
                if isinstance(exc, DaemonBusyError):
                    # A full queue frees a slot with every connection the daemon accepts, and a
                    # flooding user refills it at once: only quick, frequent tries find one. Bursts
                    # of them alternate with the usual backoff, so a daemon really gone costs little.
                    busy_tries += 1
                    if busy_tries % self.config.busy_burst:
                        await asyncio.sleep(random.uniform(0.005, 0.02))  # noqa: S311 - not for security
                        continue
            else:
                log.info("checked in with the daemon (protocol %d)", channel.version)
                delay, last_problem, busy_tries = self.config.backoff_initial, "", 0
                try:
                    if await self.serve(channel):
                        log.info("shutting down at the daemon's request")
                        return
                finally:
                    await channel.close()
            # Jitter: agents (or tries) that failed together do not all come back together.
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - not for security
            delay = min(delay * 2, self.config.backoff_max)

    async def serve(self, channel: Channel) -> bool:
        """Answer the daemon until it leaves; True when it asked us to shut down."""
        running: asyncio.Task[None] | None = None
        background: set[asyncio.Task[None]] = set()
        try:
            while True:
                try:
                    message = await channel.receive()
                except (ProtocolError, TimeoutError) as exc:
                    reason = str(exc) or "a partial frame stalled"
                    log.warning("the daemon broke protocol: %s", reason)
                    with contextlib.suppress(OSError, TimeoutError):
                        await channel.send(protocol.Refuse(reason), timeout=1.0)
                    return False
                match message:
                    case None:
                        log.info("the daemon closed the connection")
                        return False
                    case protocol.Ping(id=ping_id):
                        await channel.send(protocol.Pong(ping_id))
                    case protocol.Request(op=protocol.PingOp()):
                        await channel.send(protocol.Response(message.id, ok=True))
                    case protocol.Request(op=protocol.ShutdownOp()):
                        await channel.send(protocol.Response(message.id, ok=True))
                        return True
                    case protocol.Request(op=protocol.StartScript()):
                        task = asyncio.create_task(self._start(channel, message))
                        background.add(task)
                        task.add_done_callback(background.discard)
                    case protocol.Request(op=protocol.RunScript()):
                        if running is not None and not running.done():
                            busy = "busy: one request at a time"
                            await channel.send(protocol.Response(message.id, ok=False, error=busy))
                        else:
                            running = asyncio.create_task(self._answer(channel, message))
                    case _:
                        reason = f"unexpected {type(message).__name__.lower()} message from the daemon"
                        with contextlib.suppress(OSError, TimeoutError):
                            await channel.send(protocol.Refuse(reason), timeout=1.0)
                        return False
        except (OSError, TimeoutError) as exc:
            log.info("lost the daemon: %s", exc)
            return False
        finally:
            tasks = [*background, *([running] if running is not None else [])]
            for task in tasks:
                if not task.done():
                    task.cancel()  # the daemon is gone: process.run kills the script's whole group
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def _answer(self, channel: Channel, request: protocol.Request) -> None:
        assert isinstance(request.op, protocol.RunScript)
        response = await self.run_script(request.id, request.op)
        with contextlib.suppress(OSError, TimeoutError):
            await channel.send(_fitted(response))

    async def _start(self, channel: Channel, request: protocol.Request) -> None:
        """Answer a `start_script` once the script runs (or could not start); report its end later."""
        op = request.op
        assert isinstance(op, protocol.StartScript)
        started = asyncio.get_running_loop().create_future()
        run = protocol.RunScript(op.step_id, op.path, op.sha256, op.args, op.timeout)
        script = asyncio.create_task(self.run_script(request.id, run, on_start=started))
        try:
            await asyncio.wait([script, started], return_when=asyncio.FIRST_COMPLETED)
            with contextlib.suppress(OSError, TimeoutError):
                if not started.done():
                    await channel.send(script.result())  # refused or could not start: the answer
                    return
                await channel.send(protocol.Response(request.id, ok=True))
            done = await script
        finally:
            if not script.done():
                script.cancel()  # process.run kills the script's whole group
                with contextlib.suppress(asyncio.CancelledError):
                    await script
        exited = protocol.Exited(op.step_id, **protocol.ended_fields(done))
        with contextlib.suppress(OSError, TimeoutError):
            await channel.send(_fitted(exited))

    async def run_script(
        self, request_id: int, op: protocol.RunScript, on_start: asyncio.Future[None] | None = None
    ) -> protocol.Response:
        """Verify, run and report; every failure is a response, so the daemon always hears back."""
        started = time.monotonic()
        mask = Redactor(op.env.values())
        try:
            await asyncio.to_thread(verify_script, op.path, op.sha256, self.config.trusted_uids)
            with process.watching(self):
                done = await process.run(
                    [op.path, *op.args],
                    timeout=op.timeout,
                    env={**self._env, **op.env},
                    cwd=self._cwd,
                    on_start=None if on_start is None else (lambda _pgid: on_start.set_result(None)),
                )
        except (ScriptRefusedError, CommandError) as exc:
            log.warning("step %s: %s", op.step_id, mask(str(exc)))
            return protocol.Response(
                request_id, ok=False, duration=time.monotonic() - started, error=mask(str(exc))
            )
        except Exception as exc:
            log.exception("step %s: unexpected error", op.step_id)
            why = f"unexpected agent error: {type(exc).__name__}: {exc}"
            return protocol.Response(request_id, ok=False, duration=time.monotonic() - started, error=why)
        error: str | None = None
        if done.timed_out:
            error = f"{op.path} timed out after {op.timeout:g} s"
        elif done.returncode != 0:
            error = f"{op.path} exited with {done.returncode}"
        log.info("step %s: %s", op.step_id, error or "done")
        return protocol.Response(
            request_id,
            ok=done.ok,
            exit_code=done.returncode,
            duration=done.duration,
            output=mask(done.stdout)[-protocol.MAX_OUTPUT :],
            error=error,
            stderr=mask(done.stderr)[-protocol.MAX_OUTPUT :],
        )


_Reply = TypeVar("_Reply", protocol.Response, protocol.Exited)


def _fitted(reply: _Reply) -> _Reply:
    """`reply` with its output cut until its frame fits `protocol.MAX_FRAME`: two full tails of
    escaped control characters can exceed it, and a reply must never be lost to its size. The longer
    stream loses half its start at a time, with a note saying so."""
    while True:
        try:
            protocol.encode(reply)
        except ProtocolError:
            cut_stdout = len(reply.output) >= len(reply.stderr)
            text = reply.output if cut_stdout else reply.stderr
            if not text:
                raise  # no output left to cut: the reply is oversized for another reason (a bug)
            kept = text[len(text) // 2 :]
            shorter = f"[… {len(text) - len(kept)} characters cut to fit the agent's reply]\n{kept}"
            if cut_stdout:
                reply = dataclasses.replace(reply, output=shorter)
            else:
                reply = dataclasses.replace(reply, stderr=shorter)
        else:
            return reply


def verify_script(path: str, sha256: str, trusted_uids: frozenset[int]) -> None:
    """Refuse a script that anyone but root, the daemon or this user could have changed, or whose
    content is not what the daemon verified: the daemon's own check, run again on this side."""
    problem = untrusted_reason(path, trusted_uids, sha256)
    if problem is not None:
        raise ScriptRefusedError(f"refused: {problem}")


def run_agent(sandbox: Path | None = None) -> None:
    """The `bootstrapper agent` command."""
    if sandbox is None and os.getuid() == 0:
        raise UsageError(
            "the agent runs in a user's login session, never as root; launchd starts it per user"
        )
    paths = Paths(root=sandbox) if sandbox is not None else Paths()
    daemon_uid = _sandbox_owner(sandbox) if sandbox is not None else 0
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format="%(asctime)s agent[%(process)d] %(levelname)s %(message)s",
        )
    asyncio.run(_main(Agent(AgentConfig.for_current_user(paths.socket, daemon_uid, sandbox))))


def _sandbox_owner(sandbox: Path) -> int:
    """The daemon of a sandbox runs as whoever owns it (installed and booted it): root in CI, whose
    agents run as their users as on a Mac; otherwise the caller, as this agent does."""
    try:
        return sandbox.stat().st_uid
    except FileNotFoundError:
        return os.getuid()


def _sandbox_account(sandbox: Path, uid: int) -> str | None:
    """The sandbox user with this uid (`sandbox login` made it), if any."""
    from bootstrapper.platform.sandbox.launchd import SandboxStateError, read_state

    try:
        users = read_state(sandbox)["users"]
    except SandboxStateError:
        return None
    return next(
        (str(n) for n, info in users.items() if isinstance(info, dict) and info.get("uid") == uid), None
    )


async def _main(agent: Agent) -> None:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await agent.serve_forever()
    except asyncio.CancelledError:
        task.uncancel()
        log.info("stopped by SIGTERM")


def _user_tmpdir() -> str:
    if sys.platform == "darwin":
        with contextlib.suppress(OSError, ValueError):
            found = os.confstr(_CS_DARWIN_USER_TEMP_DIR)
            if found:
                return found
    return "/tmp"  # noqa: S108 - the per-user folder only exists on macOS; /tmp is sticky
