"""The user side of a run: who is on the console, and that user's checked-in agent.

The console user is read again for every user step, so a login that comes later, or a switch to
another user, is followed. With nobody logged in the run waits (bounded by `user_wait_timeout`,
0 = as long as it takes), saying so once, instead of failing. An agent that does not check in within
`checkin_timeout` (it may have died, say crashed by a flood of connections from another user) is
started again, up to `AGENT_STARTS` times, before the user step fails; it never passes unrun.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bootstrapper import process
from bootstrapper.engine.events import EventBus, Message
from bootstrapper.errors import IPCError, NoAgentError, NoUserError
from bootstrapper.ipc.server import AgentServer, Session, ensure_agent
from bootstrapper.platform.base import ConsoleUser

if TYPE_CHECKING:
    from bootstrapper.engine.state import StateStore
    from bootstrapper.platform.base import Platform

#: Seconds between looks at the console while waiting for a login.
LOGIN_POLL = 2.0
#: How many times the agent is started for one user step before that step fails.
AGENT_STARTS = 3
#: Seconds an agent that disconnected (it is ending) may take to exit before it counts as wedged.
EXITING_WAIT = 5.0


@dataclass(eq=False)
class AgentGate:
    """The console user and their agent for each user step (see the module docstring)."""

    platform: Platform
    server: AgentServer | None
    bus: EventBus
    _: KW_ONLY
    user_wait_timeout: float = 0.0
    checkin_timeout: float = 120.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _uid: int | None = field(default=None, init=False)
    _seen: set[int] = field(default_factory=set, init=False)
    _state: StateStore | None = field(default=None, init=False)
    _primary: ConsoleUser | None = field(default=None, init=False)
    #: Users whose agent was dropped (hung, unresponsive) or did not check in: the next start
    #: replaces whatever copy still runs instead of leaving it alone.
    _replace: set[int] = field(default_factory=set, init=False)
    _given: dict[int, Session] = field(default_factory=dict, init=False)
    #: Each user's last dropped agent, looked at again when the next one is started.
    _dropped: dict[int, Session] = field(default_factory=dict, init=False)

    def remember(self, state: StateStore) -> None:
        """Where the primary user is recorded, so a restarted daemon keeps serving the same user."""
        self._state = state
        if (found := state.state.primary_user) is not None:
            self._primary = ConsoleUser(found["name"], found["uid"], found["gid"], Path(found["home"]))

    def attach(self, server: AgentServer) -> None:
        """The server is built with `allowed_uid` of this gate, so it is attached after both exist."""
        self.server = server

    def allowed_uid(self, uid: int) -> bool:
        """The socket accepts only the primary user (the kernel says who connects); anyone else's
        agent is told it is not needed. Before there is one, any user's agent is accepted and idles:
        launchd starts it at login, maybe long before the first user step, and one refused then
        would exit for good. Those that turn out not to be the primary user's are sent away then."""
        if self._primary is not None:
            return uid == self._primary.uid
        return True

    @property
    def primary(self) -> ConsoleUser | None:
        return self._primary

    @property
    def uids_seen(self) -> set[int]:
        """Every user whose agent we may have started: cleanup boots the agent out of each gui domain."""
        return set(self._seen)

    async def console_user(self) -> ConsoleUser:
        """The primary user: the first real user on the console, recorded; later, that user while
        they are on the console or their agent still serves from a session switched away from."""
        started = time.monotonic()
        said = False
        while True:
            user = await self.platform.console_user()
            if user is not None and self._primary is None:
                self._primary = user
                if self._state is not None:
                    self._state.set_primary_user(user.name, user.uid, user.gid, str(user.home))
                self.bus.emit(Message("info", f"user steps run for {user.name}, the primary user"))
                await self._dismiss_all_but(user.uid)
            primary = self._primary
            if primary is not None:
                live = self.server.session(primary.uid) if self.server is not None else None
                if (user is not None and user.uid == primary.uid) or (live is not None and live.alive):
                    self._uid = primary.uid
                    self._seen.add(primary.uid)
                    return primary
            if not said:
                who = primary.name if primary is not None else "a user"
                self.bus.emit(Message("info", f"waiting for {who} to log in"))
                said = True
            if self.user_wait_timeout and time.monotonic() - started >= self.user_wait_timeout:
                raise NoUserError(f"nobody logged in within {self.user_wait_timeout:g} s (user_wait_timeout)")
            await self.sleep(LOGIN_POLL)

    async def session(self) -> Session:
        """The console user's agent, started (again) as needed; `NoAgentError` after `AGENT_STARTS`."""
        starts = 0
        while True:
            starts += 1
            user = await self.console_user()
            if self.server is None:
                raise IPCError("user items cannot run: the daemon has no agent socket (dry run?)")
            if (live := self.server.session(user.uid)) is not None and live.alive:
                self._given[user.uid] = live
                return live
            if (dropped := self._given.pop(user.uid, None)) is not None:
                self._dropped[user.uid] = dropped  # its process may still be there, wedged

            async def start(user: ConsoleUser = user) -> None:
                replace = user.uid in self._replace or await self._still_there(user.uid)
                verb = "replacing" if replace else "starting"
                self.bus.emit(Message("info", f"{verb} the agent for {user.name}"))
                await self.platform.start_agent(user, restart=replace)

            try:
                session = await ensure_agent(self.server, user.uid, start, self.checkin_timeout)
            except NoAgentError as exc:
                self._replace.add(user.uid)
                if starts >= AGENT_STARTS:
                    raise NoAgentError(f"{exc} ({AGENT_STARTS} starts); the step did not run") from None
                self.bus.emit(Message("warning", f"{exc}: starting it again"))
                continue
            self._replace.discard(user.uid)
            self._dropped.pop(user.uid, None)
            self._given[user.uid] = session
            return session

    async def _still_there(self, uid: int) -> bool:
        """Whether the user's dropped agent still runs when the next one is started: it is replaced
        then (`kickstart -k`). One that closed its end of the connection is on its way out (a logout,
        a SIGTERM): it is given `EXITING_WAIT` seconds to go, so that the agent launchd starts at the
        next login is not killed in its place."""
        dropped = self._dropped.get(uid)
        if dropped is None:
            return False
        if dropped.pid is None:
            return True
        waits = int(EXITING_WAIT / 0.1) if dropped.close_reason == "disconnected" else 0
        for _ in range(waits):
            if not process.group_alive(dropped.pid):
                return False
            await self.sleep(0.1)
        return process.group_alive(dropped.pid)

    async def _dismiss_all_but(self, uid: int) -> None:
        """Agents that checked in before the primary user was known, of other users: told to exit
        (0, so their KeepAlive does not start them again)."""
        if self.server is None:
            return
        for other, session in list(self.server.sessions.items()):
            if other != uid:
                with contextlib.suppress(IPCError):
                    await session.shutdown(deadline=5.0)

    async def shutdown_all(self) -> None:
        """Ask every checked-in agent to exit (the run is over); an agent that is gone is fine."""
        if self.server is None:
            return
        for session in self.server.sessions.values():
            try:
                await session.shutdown(deadline=5.0)
            except IPCError:
                continue
