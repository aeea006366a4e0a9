"""userscript: run by the console user's checked-in agent, as that user (never as root)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from bootstrapper.engine.context import RunContext
from bootstrapper.engine.kinds._script import DEFAULT_SCRIPT_TIMEOUT, tail_line
from bootstrapper.engine.kinds.base import Outcome
from bootstrapper.engine.trust import untrusted_reason
from bootstrapper.errors import IPCError
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
        call = self._call(item, file, ctx, secrets)
        if item.donotwait:
            ctx.background.append(asyncio.create_task(call))
            return Outcome.done("started in the background")
        return await call

    async def _call(self, item: Item, file: Path, ctx: RunContext, secrets: dict[str, str]) -> Outcome:
        assert item.hash is not None
        timeout = item.timeout or DEFAULT_SCRIPT_TIMEOUT
        try:
            session = await ctx.agents.session()
            response = await session.run_script(
                item.id, file, item.hash, item.arguments, timeout=timeout, env=secrets
            )
        except IPCError as exc:
            return Outcome.failed(str(exc))
        mask = Redactor(secrets.values())  # the agent masks too; an agent is not trusted to
        response = dataclasses.replace(
            response, output=mask(response.output), error=mask(response.error) if response.error else None
        )
        if response.error:
            return Outcome.failed(response.error, response.exit_code)
        if response.exit_code != 0:
            detail = tail_line(response.output)
            return Outcome.failed(
                f"exited with {response.exit_code}: {detail}".rstrip(": "), response.exit_code
            )
        return Outcome.done(tail_line(response.output), 0)


RUNNER = UserScript()
