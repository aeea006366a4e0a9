"""`launchctl`, driven the same way on a real Mac and in the sandbox: one client, two executables.

`MacOSPlatform` points it at `/bin/launchctl`; `SandboxPlatform` at the sandbox's own `launchctl`
shim, which answers with the same output and exit codes. Keeping one implementation means the
sandbox rehearses exactly the argv, and the exit-code handling, that a Mac gets.
"""

from __future__ import annotations

import plistlib
from dataclasses import dataclass
from pathlib import Path
from xml.parsers.expat import ExpatError

from bootstrapper import process
from bootstrapper.errors import CommandError, LaunchdError, PlatformError, ServiceNotLoadedError
from bootstrapper.platform.base import Platform, ServiceInfo, check_domain, gui_domain, service_target

#: launchctl exit codes, as recorded on real Macs (tests/data/macos/SOURCES.md).
LAUNCHCTL_NOT_FOUND = 113  # "Could not find service … in domain …"
LAUNCHCTL_NO_PROCESS = 3  # "No such process": older macOS's not-loaded
LAUNCHCTL_IO_ERROR = 5  # "Input/output error": already loaded, or disabled, or broken
LAUNCHCTL_ALREADY = 37  # "Operation already in progress": already bootstrapped
LAUNCHCTL_IN_PROGRESS = 36  # "Operation now in progress": bootout under way
LAUNCHCTL_INVALID_PLIST = 133  # "<path>: Invalid property list"

SHORT = 30.0


def parse_launchctl_print(text: str, target: str) -> ServiceInfo:
    """The top-level `key = value` lines of `launchctl print <target>` (nested blocks skipped)."""
    props: dict[str, str] = {}
    depth = 0
    for raw in text.splitlines():
        line = raw.strip()
        if line.endswith("{"):
            depth += 1
            continue
        if line == "}":
            depth -= 1
            continue
        if depth == 1 and " = " in line:
            key, _, value = line.partition(" = ")
            props[key.strip()] = value.strip()
    return ServiceInfo(
        target=target,
        state=props.get("state", ""),
        pid=_num(props.get("pid")),
        last_exit_code=props.get("last exit code"),
        path=props.get("path"),
        properties=props,
    )


def checked_id(kind: str, value: str) -> str:
    """A pkgid or label goes into argv: it must not pass for an option or carry line breaks."""
    if not value or value.startswith("-") or any(c in value for c in "\0\n\r/"):
        raise PlatformError(f"invalid {kind} {value!r}")
    return value


def plist_label(plist: Path) -> str:
    """The Label of a job's plist, read before bootstrap so that "already loaded" can be confirmed."""
    try:
        data = plistlib.loads(plist.read_bytes())
    except (OSError, plistlib.InvalidFileException, ExpatError, ValueError) as exc:
        raise LaunchdError(f"{plist}: invalid property list ({exc})", LAUNCHCTL_INVALID_PLIST) from None
    label = data.get("Label") if isinstance(data, dict) else None
    if not isinstance(label, str) or not label:
        raise LaunchdError(f"{plist}: invalid property list (no Label)", LAUNCHCTL_INVALID_PLIST)
    return label


@dataclass(frozen=True)
class LaunchctlClient:
    """The launchd half of a platform: every call is one `launchctl` argv, its exit code interpreted."""

    launchctl: str

    async def _run(self, *args: str, timeout: float = SHORT) -> process.Completed:
        try:
            result = await process.run([self.launchctl, *args], timeout=timeout)
        except CommandError as exc:
            raise PlatformError(str(exc)) from None
        if result.timed_out:
            raise PlatformError(f"launchctl {args[0]} timed out after {timeout:g} s")
        return result

    async def bootstrap(self, domain: str, plist: Path) -> bool:
        label = plist_label(plist)
        result = await self._run("bootstrap", check_domain(domain), str(plist))
        if result.ok:
            return True
        rc = result.returncode
        if rc == LAUNCHCTL_INVALID_PLIST:
            raise LaunchdError(f"{plist}: invalid property list (launchctl bootstrap exit 133)", rc, domain)
        if rc in (LAUNCHCTL_IO_ERROR, LAUNCHCTL_ALREADY) and await self.is_loaded(domain, label):
            return False
        raise LaunchdError(
            f"launchctl bootstrap {domain} {plist} failed (exit {rc}): {_last(result)}",
            rc,
            f"{domain}/{label}",
        )

    async def bootout(self, domain: str, label: str) -> bool:
        target = service_target(check_domain(domain), checked_id("label", label))
        result = await self._run("bootout", target)
        rc = result.returncode
        if result.ok or rc == LAUNCHCTL_IN_PROGRESS:
            return True
        if rc in (LAUNCHCTL_NOT_FOUND, LAUNCHCTL_NO_PROCESS):
            return False
        if rc == LAUNCHCTL_IO_ERROR and not await self.is_loaded(domain, label):
            return False
        raise LaunchdError(f"launchctl bootout {target} failed (exit {rc}): {_last(result)}", rc, target)

    async def kickstart(self, domain: str, label: str, *, restart: bool = False) -> None:
        target = service_target(check_domain(domain), checked_id("label", label))
        result = await self._run("kickstart", *(["-k"] if restart else []), target)
        rc = result.returncode
        if rc in (LAUNCHCTL_NOT_FOUND, LAUNCHCTL_NO_PROCESS):
            raise ServiceNotLoadedError(f"{target} is not loaded (launchctl kickstart exit {rc})", rc, target)
        if not result.ok:
            raise LaunchdError(
                f"launchctl kickstart {target} failed (exit {rc}): {_last(result)}", rc, target
            )

    async def service(self, domain: str, label: str) -> ServiceInfo | None:
        target = service_target(check_domain(domain), checked_id("label", label))
        result = await self._run("print", target)
        if result.returncode == LAUNCHCTL_NOT_FOUND:
            return None
        if not result.ok:
            raise LaunchdError(
                f"launchctl print {target} failed (exit {result.returncode}): {_last(result)}",
                result.returncode,
                target,
            )
        return parse_launchctl_print(result.tail, target)

    async def is_loaded(self, domain: str, label: str) -> bool:
        return await self.service(domain, label) is not None

    async def enable(self, domain: str, label: str) -> bool:
        """Clear a disabled override (left by `unload -w`), which would make bootstrap fail with 5."""
        result = await self._run("enable", service_target(check_domain(domain), checked_id("label", label)))
        return result.ok

    async def start_agent(self, uid: int, plist: Path, label: str, *, restart: bool = False) -> None:
        """Our LaunchAgent in the user's GUI domain, started (bootstrap may already have started it).

        `restart` replaces a running copy (`kickstart -k`: launchd stops it first), the only way to
        get rid of a hung agent: a plain kickstart leaves a live process alone.
        """
        domain = gui_domain(uid)
        await self.bootstrap(domain, plist)
        await self.kickstart(domain, label, restart=restart)

    async def logout(self, uid: int) -> None:
        """`bootout gui/UID` ends the GUI session without the Automation consent AppleScript needs."""
        target = gui_domain(uid)
        result = await self._run("bootout", target)
        if not result.ok and result.returncode not in (LAUNCHCTL_NOT_FOUND, LAUNCHCTL_NO_PROCESS):
            raise LaunchdError(
                f"launchctl bootout {target} failed (exit {result.returncode}): {_last(result)}",
                result.returncode,
                target,
            )

    def asuser(self, uid: int, *argv: str) -> list[str]:
        """The argv that runs `argv` in the user's bootstrap namespace (identity unchanged)."""
        return [self.launchctl, "asuser", str(uid), *argv]


def _num(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _last(result: process.Completed) -> str:
    lines = result.tail.strip().splitlines()
    return lines[-1] if lines else "no output"


class LaunchdOperations(Platform):
    """A `Platform` that talks to launchd through `self.launchd`, as both platforms do: its launchd
    methods are done here once."""

    @property
    def launchd(self) -> LaunchctlClient:
        raise NotImplementedError

    async def bootstrap(self, domain: str, plist: Path) -> bool:
        return await self.launchd.bootstrap(domain, plist)

    async def bootout(self, domain: str, label: str) -> bool:
        return await self.launchd.bootout(domain, label)

    async def kickstart(self, domain: str, label: str, *, restart: bool = False) -> None:
        await self.launchd.kickstart(domain, label, restart=restart)

    async def service(self, domain: str, label: str) -> ServiceInfo | None:
        return await self.launchd.service(domain, label)

    async def is_loaded(self, domain: str, label: str) -> bool:
        return await self.launchd.is_loaded(domain, label)
