"""userscript: run by the console user's checked-in agent, as that user (never as root)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from bootstrapper.engine.context import RunContext
from bootstrapper.engine.events import Message
from bootstrapper.engine.kinds._script import DEFAULT_SCRIPT_TIMEOUT, script_outcome, tail_line
from bootstrapper.engine.kinds.base import Outcome
from bootstrapper.engine.trust import untrusted_reason
from bootstrapper.errors import AgentDisconnectedError, AgentUnresponsiveError, IPCError
from bootstrapper.fetch.redact import Redactor
from bootstrapper.manifest.model import Item


class UserScript:
    async def run(self, item: Item, file: Path | None, ctx: RunContext) -> Outcome:
        assert file is not None
        assert item.hash is not None
        problem = untrusted_reason(file, ctx.owner_uid, item.hash)
        if problem is not None:
            return Outcome.failed(f"refused: {problem}")
        secrets = ctx.secrets(item)
        if isinstance(secrets, str):
            return Outcome.failed(secrets)
        if item.donotwait:
            if secrets:
                return Outcome.failed("refused: a donotwait user script cannot be given secrets; let it wait")
            return await self._start(item, file, ctx)
        return await self._call(item, file, ctx, secrets)

    async def _start(self, item: Item, file: Path, ctx: RunContext) -> Outcome:
        """A `donotwait` script: the agent starts it and answers at once, so it does not hold the
        agent's one request slot; its end (and exit code) comes later. No agent, no run: a step
        that never started is not done."""
        assert item.hash is not None
        timeout = item.timeout or DEFAULT_SCRIPT_TIMEOUT
        try:
            session = await ctx.agents.session()
            response = await session.run_script(
                item.id, file, item.hash, item.arguments, timeout=timeout, background=True
            )
        except IPCError as exc:
            return Outcome.failed(str(exc))
        if not response.ok:
            return Outcome.failed(response.error or "the agent could not start it", response.exit_code)

        async def ended() -> Outcome:
            exited = await session.script_exit(item.id)
            if exited.ok:
                return Outcome.done(
                    tail_line(exited.output), exited.exit_code, stdout=exited.output, stderr=exited.stderr
                )
            return Outcome.failed(
                exited.error or f"exited with {exited.exit_code}",
                exited.exit_code,
                stdout=exited.output,
                stderr=exited.stderr,
            )

        task: asyncio.Task[object] = asyncio.create_task(ended(), name=item.id)
        ctx.background.append(task)
        return Outcome.done("started in the background")

    async def _call(self, item: Item, file: Path, ctx: RunContext, secrets: dict[str, str]) -> Outcome:
        """Ask the primary user's agent to run it. A script cut short because its agent went away
        (the user logged out, the agent was replaced) runs again in the next session, at most
        `retries` more times: user steps are at-least-once."""
        assert item.hash is not None
        timeout = item.timeout or DEFAULT_SCRIPT_TIMEOUT
        cut_short = 0
        while True:
            try:
                session = await ctx.agents.session()
                response = await session.run_script(
                    item.id, file, item.hash, item.arguments, timeout=timeout, env=secrets
                )
            except (AgentDisconnectedError, AgentUnresponsiveError) as exc:
                if cut_short >= item.retries:
                    return Outcome.failed(f"{exc} ({cut_short + 1} tries)")
                cut_short += 1
                ctx.bus.emit(Message("warning", f"{item.label}: {exc}; it runs again in the next session"))
                continue
            except IPCError as exc:
                return Outcome.failed(str(exc))
            break
        mask = Redactor(secrets.values())  # the agent masks too; an agent is not trusted to
        response = dataclasses.replace(
            response,
            output=mask(response.output),
            stderr=mask(response.stderr),
            error=mask(response.error) if response.error else None,
        )
        return script_outcome(response.output, response.stderr, response.exit_code, response.error or "")


RUNNER = UserScript()
