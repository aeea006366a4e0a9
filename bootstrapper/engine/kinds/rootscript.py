"""rootscript: run by the daemon, as root, from a copy nobody else can reach.

The verified download is copied into root's private staging folder (`safefile.stage_copy`, hashed
as it is copied, 0700) and that copy is run, then removed: what runs is exactly the bytes the
manifest names, whoever can reach the item's path. Scripts therefore must not rely on the folder
they were downloaded to (`$0` is the staged copy); `$BOOTSTRAPPER_ROOT` says where the system is,
and they start in it (`/` on a Mac, as under launchd; the sandbox's root in a sandbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path

from bootstrapper import process
from bootstrapper.engine.context import RunContext
from bootstrapper.engine.kinds._script import DEFAULT_SCRIPT_TIMEOUT, script_outcome
from bootstrapper.engine.kinds.base import Outcome
from bootstrapper.errors import CommandError, UnsafePathError
from bootstrapper.fetch.redact import Redactor
from bootstrapper.manifest.model import Item
from bootstrapper.process import Completed
from bootstrapper.safefile import stage_copy


class RootScript:
    async def run(self, item: Item, file: Path | None, ctx: RunContext) -> Outcome:
        assert file is not None
        assert item.hash is not None
        secrets = ctx.secrets(item)
        if isinstance(secrets, str):
            return Outcome.failed(secrets)
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
        # the named secrets reach this script only, and are masked in what it prints
        mask = Redactor(secrets.values())
        env = {**ctx.script_env(), **secrets}
        call = _run_then_remove(copy, item.arguments, timeout, env, ctx.paths.root, mask)
        if item.donotwait:
            # named after the step: its exit code and output are reported when the run reaps it
            ctx.background.append(asyncio.create_task(call, name=item.id))
            return Outcome.done("started in the background")
        try:
            result = await call
        except CommandError as exc:
            return Outcome.failed(mask(str(exc)))
        problem = f"timed out after {timeout:g} s" if result.timed_out else ""
        return script_outcome(result.stdout, result.stderr, result.returncode, problem)


async def _run_then_remove(
    copy: Path, arguments: tuple[str, ...], timeout: float, env: dict[str, str], cwd: Path, mask: Redactor
) -> Completed:
    """Run the staged copy from `cwd` (the system's `/`, as under launchd), then remove it; what it
    printed comes back with the secrets masked."""
    try:
        done = await process.run([copy, *arguments], timeout=timeout, env=env, cwd=cwd)
    finally:
        _remove(copy)
    return dataclasses.replace(done, tail=mask(done.tail), stdout=mask(done.stdout), stderr=mask(done.stderr))


def _remove(copy: Path) -> None:
    with contextlib.suppress(OSError):
        copy.unlink()


RUNNER = RootScript()
