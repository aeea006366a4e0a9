"""package: install through the platform (one installer at a time), then insist on the receipt.

What is read and installed is a copy in root's private staging folder, hashed as it is copied
(`safefile.stage_copy`), never the file at the item's path: wherever the manifest puts a package
(an InstallApplications manifest may say /Users/Shared), another user who can reach that path could
swap their own package in between the download and `installer`. The copy is removed afterwards.

A package with a payload that leaves no receipt did not install, whatever `installer` said; a
payload-free package (scripts only) may legitimately leave none.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from bootstrapper.engine import events as ev
from bootstrapper.engine.context import RunContext
from bootstrapper.engine.kinds.base import Outcome
from bootstrapper.errors import InstallError, PackageError, PlatformError, UnsafePathError
from bootstrapper.manifest.model import Item
from bootstrapper.safefile import stage_copy

DEFAULT_INSTALL_TIMEOUT = 3600.0


class Package:
    async def run(self, item: Item, file: Path | None, ctx: RunContext) -> Outcome:
        assert file is not None
        assert item.hash is not None
        try:
            copy = await asyncio.to_thread(stage_copy, file, item.hash, ctx.paths.staging_dir, size=item.size)
        except UnsafePathError as exc:
            return Outcome.failed(f"refused: {exc}")
        try:
            return await self._install(item, copy, ctx)
        finally:
            with contextlib.suppress(OSError):
                copy.unlink()

    async def _install(self, item: Item, copy: Path, ctx: RunContext) -> Outcome:
        from bootstrapper.flatpkg import read_package

        try:
            info = read_package(copy, digest=False)  # its sha256 was checked as it was copied
        except PackageError as exc:
            return Outcome.failed(f"not an installable package: {exc}")

        refused = await _team_refusal(item, copy, ctx)
        if refused is not None:
            return Outcome.failed(refused)

        def progress(percent: float, phase: str) -> None:
            ctx.bus.emit(ev.InstallProgress(item.id, percent, phase))

        try:
            result = await ctx.platform.install_pkg(
                copy, progress, timeout=item.timeout or DEFAULT_INSTALL_TIMEOUT
            )
        except InstallError as exc:
            # what `installer` (or a package script) printed last, for the log and the reports
            return Outcome.failed(str(exc), exc.returncode, stdout=exc.tail)
        except PlatformError as exc:
            return Outcome.failed(str(exc))
        await asyncio.sleep(0)  # let progress reports queued by the installer's thread arrive first
        ids = [item.packageid] if item.packageid else list(info.component_ids)
        if info.has_payload:
            for pkgid in ids:
                if await ctx.platform.receipt(pkgid) is None:
                    return Outcome.failed(f"installer reported success but left no receipt for {pkgid}")
        note = f"{result.action} took {result.duration:.1f} s"
        if result.restart_required:
            note += f"; the package asks for a {result.postinstall_action}"
        return Outcome.done(note, 0)


async def _team_refusal(item: Item, file: Path, ctx: RunContext) -> str | None:
    """Why the package may not be installed for want of the right signer, or None.

    The item's `team_id` and the settings' `allowed_team_ids` both apply: the MDM's list is the
    admin's policy, which a manifest cannot widen.
    """
    allowed = ctx.config.allowed_team_ids
    if item.team_id is None and not allowed:
        return None
    try:
        signer = await ctx.platform.package_team(file)
    except PlatformError as exc:
        return f"refused: cannot check the package's signature ({exc})"
    if item.team_id is not None and signer.team != item.team_id:
        return (
            f"refused: team_id {item.team_id} expected a Developer ID Installer signature of that"
            f" team, found {signer.found}"
        )
    if allowed and signer.team not in allowed:
        return (
            f"refused: allowed_team_ids ({', '.join(allowed)}) expected a Developer ID Installer"
            f" signature of one of them, found {signer.found}"
        )
    return None


RUNNER = Package()
