"""rootscript: run by the daemon, as root, from a copy nobody else can reach.

The verified download is copied into root's private staging folder (`safefile.stage_copy`, hashed
as it is copied, 0700) and that copy is run, then removed: what runs is exactly the bytes the
manifest names, whoever can reach the item's path. Scripts therefore must not rely on the folder
they were downloaded to (`$0` is the staged copy); `$BOOTSTRAPPER_ROOT` says where the system is.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from bootstrapper import process
from bootstrapper.engine.context import RunContext
from bootstrapper.engine.kinds._script import DEFAULT_SCRIPT_TIMEOUT, tail_line
from bootstrapper.engine.kinds.base import Outcome
from bootstrapper.errors import CommandError, UnsafePathError
from bootstrapper.manifest.model import Item
from bootstrapper.process import Completed
from bootstrapper.safefile import stage_copy


class RootScript:
    async def run(self, item: Item, file: Path | None, ctx: RunContext) -> Outcome:
        assert file is not None
        assert item.hash is not None
        try:
            copy = await asyncio.to_thread(
                stage_copy, file, item.hash, ctx.paths.staging_dir, mode=0o700, size=item.size
            )
        except UnsafePathError as exc:
            return Outcome.failed(f"refused: {exc}")
        try:
            with copy.open("rb") as head:
                shebang = head.read(2) == b"#!"
        except OSError as exc:
            _remove(copy)
            return Outcome.failed(f"refused: {copy}: cannot be read ({exc.strerror})")
        if not shebang:
            _remove(copy)
            return Outcome.failed(
                f"refused: {file}: has no #! line; start the script with one, e.g. #!/bin/sh"
            )
        timeout = item.timeout or DEFAULT_SCRIPT_TIMEOUT
        call = _run_then_remove(copy, item.arguments, timeout, ctx.script_env())
        if item.donotwait:
            # named after the step: its exit code is reported when the run reaps it
            ctx.background.append(asyncio.create_task(call, name=item.id))
            return Outcome.done("started in the background")
        try:
            result = await call
        except CommandError as exc:
            return Outcome.failed(str(exc))
        if result.timed_out:
            return Outcome.failed(
                f"timed out after {timeout:g} s: {tail_line(result.tail)}", result.returncode
            )
        if result.returncode != 0:
            return Outcome.failed(
                f"exited with {result.returncode}: {tail_line(result.tail)}".rstrip(": "), result.returncode
            )
        return Outcome.done(tail_line(result.tail), 0)


async def _run_then_remove(
    copy: Path, arguments: tuple[str, ...], timeout: float, env: dict[str, str]
) -> Completed:
    try:
        return await process.run([copy, *arguments], timeout=timeout, env=env)
    finally:
        _remove(copy)


def _remove(copy: Path) -> None:
    with contextlib.suppress(OSError):
        copy.unlink()


RUNNER = RootScript()
