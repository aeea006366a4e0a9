"""rootscript (run by the daemon, as root) and userscript (run by the user's checked-in agent)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bootstrapper import process
from bootstrapper.engine.context import RunContext
from bootstrapper.engine.kinds.base import Outcome
from bootstrapper.engine.trust import untrusted_reason
from bootstrapper.errors import CommandError, IPCError
from bootstrapper.manifest.model import Item, Kind

#: A script with no `timeout` of its own may run this long.
DEFAULT_SCRIPT_TIMEOUT = 3600.0


def _tail_line(tail: str) -> str:
    lines = [line for line in tail.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


class RootScript:
    kind = Kind.ROOTSCRIPT
    mode = 0o700

    async def run(self, item: Item, file: Path | None, ctx: RunContext) -> Outcome:
        assert file is not None
        problem = untrusted_reason(file, ctx.owner_uid, item.hash)
        if problem is not None:
            return Outcome.failed(f"refused: {problem}")
        timeout = item.timeout or DEFAULT_SCRIPT_TIMEOUT
        call = process.run([file, *item.arguments], timeout=timeout, env=ctx.script_env())
        if item.donotwait:
            ctx.background.append(asyncio.create_task(_background(item, call)))
            return Outcome.done("started in the background")
        try:
            result = await call
        except CommandError as exc:
            return Outcome.failed(str(exc))
        if result.timed_out:
            return Outcome.failed(
                f"timed out after {timeout:g} s: {_tail_line(result.tail)}", result.returncode
            )
        if result.returncode != 0:
            return Outcome.failed(
                f"exited with {result.returncode}: {_tail_line(result.tail)}".rstrip(": "), result.returncode
            )
        return Outcome.done(_tail_line(result.tail), 0)


async def _background(item: Item, call: object) -> object:
    assert asyncio.iscoroutine(call)
    return await call


class UserScript:
    kind = Kind.USERSCRIPT
    mode = 0o755

    async def run(self, item: Item, file: Path | None, ctx: RunContext) -> Outcome:
        assert file is not None
        assert item.hash is not None
        problem = untrusted_reason(file, ctx.owner_uid, item.hash)
        if problem is not None:
            return Outcome.failed(f"refused: {problem}")
        call = self._call(item, file, ctx)
        if item.donotwait:
            ctx.background.append(asyncio.create_task(call))
            return Outcome.done("started in the background")
        return await call

    async def _call(self, item: Item, file: Path, ctx: RunContext) -> Outcome:
        assert item.hash is not None
        timeout = item.timeout or DEFAULT_SCRIPT_TIMEOUT
        try:
            session = await ctx.agents.session()
            response = await session.run_script(item.id, file, item.hash, item.arguments, timeout=timeout)
        except IPCError as exc:
            return Outcome.failed(str(exc))
        if response.error:
            return Outcome.failed(response.error, response.exit_code)
        if response.exit_code != 0:
            detail = _tail_line(response.output)
            return Outcome.failed(
                f"exited with {response.exit_code}: {detail}".rstrip(": "), response.exit_code
            )
        return Outcome.done(_tail_line(response.output), 0)
