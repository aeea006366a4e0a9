"""userscript: run by the console user's checked-in agent, as that user (never as root)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bootstrapper.engine.context import RunContext
from bootstrapper.engine.events import Message
from bootstrapper.engine.kinds._script import DEFAULT_SCRIPT_TIMEOUT, tail_line
from bootstrapper.engine.kinds.base import Outcome
from bootstrapper.engine.trust import untrusted_reason
from bootstrapper.errors import AgentDisconnectedError, AgentUnresponsiveError, IPCError
from bootstrapper.manifest.model import Item


class UserScript:
    async def run(self, item: Item, file: Path | None, ctx: RunContext) -> Outcome:
        assert file is not None
        assert item.hash is not None
        problem = untrusted_reason(file, ctx.owner_uid, item.hash)
        if problem is not None:
            return Outcome.failed(f"refused: {problem}")
        if item.donotwait:
            try:
                await ctx.agents.session()  # no agent, no run: a step that never ran is not done
            except IPCError as exc:
                return Outcome.failed(str(exc))
            ctx.background.append(asyncio.create_task(self._call(item, file, ctx)))
            return Outcome.done("started in the background")
        return await self._call(item, file, ctx)

    async def _call(self, item: Item, file: Path, ctx: RunContext) -> Outcome:
        """Ask the primary user's agent to run it. A script cut short because its agent went away
        (the user logged out, the agent was replaced) runs again in the next session, at most
        `retries` more times: user steps are at-least-once."""
        assert item.hash is not None
        timeout = item.timeout or DEFAULT_SCRIPT_TIMEOUT
        cut_short = 0
        while True:
            try:
                session = await ctx.agents.session()
                response = await session.run_script(item.id, file, item.hash, item.arguments, timeout=timeout)
            except (AgentDisconnectedError, AgentUnresponsiveError) as exc:
                if cut_short >= item.retries:
                    return Outcome.failed(f"{exc} ({cut_short + 1} tries)")
                cut_short += 1
                ctx.bus.emit(Message("warning", f"{item.label}: {exc}; it runs again in the next session"))
                continue
            except IPCError as exc:
                return Outcome.failed(str(exc))
            break
        if response.error:
            return Outcome.failed(response.error, response.exit_code)
        if response.exit_code != 0:
            detail = tail_line(response.output)
            return Outcome.failed(
                f"exited with {response.exit_code}: {detail}".rstrip(": "), response.exit_code
            )
        return Outcome.done(tail_line(response.output), 0)


RUNNER = UserScript()
