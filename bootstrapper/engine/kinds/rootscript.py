"""rootscript: run by the daemon, as root, only if nobody else could have changed it."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from bootstrapper import process
from bootstrapper.engine.context import RunContext
from bootstrapper.engine.kinds._script import DEFAULT_SCRIPT_TIMEOUT, tail_line
from bootstrapper.engine.kinds.base import Outcome
from bootstrapper.engine.trust import untrusted_reason
from bootstrapper.errors import CommandError
from bootstrapper.fetch.redact import Redactor
from bootstrapper.manifest.model import Item


class RootScript:
    async def run(self, item: Item, file: Path | None, ctx: RunContext) -> Outcome:
        assert file is not None
        problem = untrusted_reason(file, ctx.owner_uid, item.hash)
        if problem is not None:
            return Outcome.failed(f"refused: {problem}")
        secrets = ctx.secrets(item)
        if isinstance(secrets, str):
            return Outcome.failed(secrets)
        timeout = item.timeout or DEFAULT_SCRIPT_TIMEOUT
        env = {**ctx.script_env(), **secrets}
        call = process.run([file, *item.arguments], timeout=timeout, env=env)
        if item.donotwait:
            ctx.background.append(asyncio.create_task(call))
            return Outcome.done("started in the background")
        try:
            result = await call
        except CommandError as exc:
            return Outcome.failed(Redactor(secrets.values())(str(exc)))
        result = dataclasses.replace(result, tail=Redactor(secrets.values())(result.tail))
        if result.timed_out:
            return Outcome.failed(
                f"timed out after {timeout:g} s: {tail_line(result.tail)}", result.returncode
            )
        if result.returncode != 0:
            return Outcome.failed(
                f"exited with {result.returncode}: {tail_line(result.tail)}".rstrip(": "), result.returncode
            )
        return Outcome.done(tail_line(result.tail), 0)


RUNNER = RootScript()
