"""The real Mac: `installer`, `pkgutil`, `launchctl`, `scutil`, `sysctl`, `sw_vers`, `shutdown`.

Every command goes through `bootstrapper.process.run` by absolute path (its PATH is clean), and the
paths are injectable (`Commands`) so that contract tests can point them at fake executables that
answer with real recorded output. The parsers are plain functions, tested on those recordings.
"""

from __future__ import annotations

import plistlib
import pwd
import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.parsers.expat import ExpatError

from bootstrapper import process
from bootstrapper.errors import CommandError, InstallError, PackageError, PlatformError
from bootstrapper.manifest.facts import Facts
from bootstrapper.paths import Paths
from bootstrapper.platform.base import (
    NOT_A_USER,
    ConsoleUser,
    InstallResult,
    PackageTeam,
    ProgressCallback,
    Receipt,
    SystemProxy,
)
from bootstrapper.platform.launchctl import SHORT, LaunchctlClient, LaunchdOperations, checked_id

_NO_RECEIPT = re.compile(r"No receipt for '([^']*)' found at '([^']*)'\.?")


@dataclass(frozen=True)
class Commands:
    """Absolute paths of every program this platform runs."""

    installer: str = "/usr/sbin/installer"
    pkgutil: str = "/usr/sbin/pkgutil"
    launchctl: str = "/bin/launchctl"
    scutil: str = "/usr/sbin/scutil"
    stat: str = "/usr/bin/stat"
    sysctl: str = "/usr/sbin/sysctl"
    sw_vers: str = "/usr/bin/sw_vers"
    ioreg: str = "/usr/sbin/ioreg"
    shutdown: str = "/sbin/shutdown"
    sudo: str = "/usr/bin/sudo"
    ps: str = "/bin/ps"
    env: str = "/usr/bin/env"
    sh: str = "/bin/sh"

    @classmethod
    def under(cls, folder: Path, keep: Sequence[str] = ("sh", "env")) -> Commands:
        """Every command from one folder (the tests' fakes), except those named in `keep`."""
        fields = {
            f: str(folder / Path(getattr(cls(), f)).name) for f in cls.__dataclass_fields__ if f not in keep
        }
        return cls(**fields)


# --- installer -----------------------------------------------------------------------------------

_INSTALLER = re.compile(
    r"installer:(?:%(?P<pct>[0-9.]+)|PHASE:(?P<phase>.*)|STATUS:(?P<status>.*)| (?P<msg>.*))$"
)
_FAILED = re.compile(r"The (install|upgrade) failed\s*\((?P<reason>.*)\)\s*\.?$")
_SUCCESS = re.compile(r"The (install|upgrade) was successful")


@dataclass
class InstallerOutput:
    """Follows `installer -verboseR` line by line. Prefixes (`==> ` from brew, a wrapper's
    `Error: … returned 1: `) are tolerated; localized PHASE texts are kept as printed."""

    percent: float = 0.0
    phase: str = ""
    package_name: str = ""
    action: str = ""
    succeeded: bool = False
    reason: str = ""
    phases: list[str] = field(default_factory=list)
    last_message: str = ""

    def feed(self, line: str) -> tuple[float, str] | None:
        """Take one output line; returns (percent, phase) when progress moved, else None."""
        m = _INSTALLER.search(line.rstrip("\r\n"))
        if m is None:
            return None
        if m["pct"] is not None:
            try:
                self.percent = max(0.0, min(100.0, float(m["pct"])))
            except ValueError:
                return None
            return self.percent, self.phase
        if m["phase"] is not None:
            text = m["phase"].strip().removesuffix("…").removesuffix("...").strip()
            if text:
                self.phase = text
                if text not in self.phases:
                    self.phases.append(text)
                return self.percent, self.phase
            return None
        if m["status"] is not None:
            text = m["status"].strip()
            return (self.percent, text) if text else None
        self._message(m["msg"].strip())
        return None

    def _message(self, msg: str) -> None:
        self.last_message = msg
        if msg.startswith("Package name is "):
            self.package_name = msg.removeprefix("Package name is ")
        elif msg.startswith("Installing at base path"):
            self.action = "install"
        elif msg.startswith("Upgrading at base path"):
            self.action = "upgrade"
        elif failed := _FAILED.search(msg):
            self.reason = failed["reason"].strip()
            self.succeeded = False
        elif _SUCCESS.search(msg):
            self.succeeded = True


# --- pkgutil -------------------------------------------------------------------------------------


def parse_pkg_info_plist(text: str, pkgid: str) -> Receipt | None:
    """`pkgutil --pkg-info-plist` output → Receipt; None for "No receipt for …"; junk before is skipped."""
    if _NO_RECEIPT.search(text):
        return None
    starts = [i for i in (text.find("<?xml"), text.find("<!DOCTYPE plist"), text.find("<plist")) if i >= 0]
    end = text.rfind("</plist>")
    if not starts or end < 0:
        raise PlatformError(f"pkgutil printed no receipt plist for {pkgid}: {text.strip()[-200:]!r}")
    try:
        data = plistlib.loads(text[min(starts) : end + len("</plist>")].encode("utf-8"))
    except (plistlib.InvalidFileException, ExpatError, ValueError) as exc:
        raise PlatformError(f"pkgutil printed an unreadable receipt plist for {pkgid}: {exc}") from None
    if not isinstance(data, dict):
        raise PlatformError(f"pkgutil's receipt plist for {pkgid} is not a dictionary")
    return receipt_from_plist(data, pkgid)


def receipt_from_plist(data: Mapping[str, Any], pkgid: str) -> Receipt:
    try:
        return Receipt(
            pkgid=str(data["pkgid"]),
            version=str(data["pkg-version"]),
            location=str(data.get("install-location", "")),
            volume=str(data.get("volume", "/")),
            install_time=int(data.get("install-time", 0)),
            groups=tuple(str(g) for g in data.get("groups", ())),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PlatformError(f"the receipt of {pkgid} lacks or mangles a field: {exc}") from None


# --- pkgutil --check-signature ------------------------------------------------------------------

#: The statuses with which pkgutil says the system trusts the chain (the older wording first; a Mac
#: Installer Distribution certificate also reports it, so the leaf must be checked as well).
_TRUSTED_STATUS = (
    "signed by a certificate trusted by",
    "signed by a developer certificate issued by Apple for distribution",
)
_DEVELOPER_ID_INSTALLER = re.compile(r"Developer ID Installer: .+ \((?P<team>[A-Z0-9]{10})\)$")


def parse_check_signature(text: str) -> PackageTeam:
    """`pkgutil --check-signature PKG` → the Developer ID Installer team, when the system trusts it."""
    status = leaf = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("Status:") and not status:
            status = stripped.removeprefix("Status:").strip()
        elif stripped.startswith("1. ") and not leaf:
            leaf = stripped.removeprefix("1. ").strip()
    if not status:
        return PackageTeam(None, "no answer from pkgutil --check-signature")
    if not leaf:
        return PackageTeam(None, status)
    if not status.startswith(_TRUSTED_STATUS):
        return PackageTeam(None, f"{leaf} ({status})")
    match = _DEVELOPER_ID_INSTALLER.match(leaf)
    if match is None:
        return PackageTeam(None, f"{leaf}, which is not a Developer ID Installer certificate")
    return PackageTeam(match["team"], leaf)


def parse_scutil_proxy(text: str) -> SystemProxy | None:
    """`scutil --proxy` → the system's HTTPS proxy and its exceptions, or None (also for a PAC file,
    which is not evaluated).

    The exceptions are kept as written; `fetch.proxy.ProxyBypass` says which forms match what.
    """
    d = parse_scutil(text)
    host = str(d.get("HTTPSProxy", "")).strip()
    port = _num(d.get("HTTPSPort"))
    if d.get("HTTPSEnable") != "1" or not host or any(c in host for c in "/@ "):
        return None
    url = f"http://{host}:{port or 443}" if ":" not in host else f"http://[{host}]:{port or 443}"
    listed = d.get("ExceptionsList", [])
    # an entry holding a comma (typed into a profile as one string) is several entries
    parts = (p.strip() for e in (listed if isinstance(listed, list) else ()) for p in str(e).split(","))
    exceptions = tuple(p for p in parts if p)
    return SystemProxy(url, exceptions, d.get("ExcludeSimpleHostnames") == "1")


# --- scutil --------------------------------------------------------------------------------------


def parse_scutil(text: str) -> dict[str, Any]:
    """scutil's `<dictionary> { key : value … }` notation → nested dicts (arrays become lists)."""
    lines = [ln.strip() for ln in text.splitlines()]
    start = next((i for i, ln in enumerate(lines) if ln.endswith("<dictionary> {")), None)
    if start is None:
        return {}
    stack: list[dict[str, Any]] = [{}]
    root = stack[0]
    for ln in lines[start + 1 :]:
        if ln == "}":
            stack.pop()
            if not stack:
                break
            continue
        key, sep, value = ln.partition(" : ")
        if not sep:
            continue
        parent = stack[-1]
        if value in ("<dictionary> {", "<array> {"):
            child: dict[str, Any] = {}
            parent[key.strip()] = child
            stack.append(child)
        else:
            parent[key.strip()] = value.strip()
    return _arrays(root)


def _arrays(node: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if not isinstance(value, dict):
            out[key] = value
            continue
        inner = _arrays(value)
        numbered = bool(inner) and all(k.isdigit() for k in inner)
        out[key] = [inner[k] for k in sorted(inner, key=int)] if numbered else inner
    return out


@dataclass(frozen=True)
class ConsoleAnswer:
    """What scutil said: `decided` False means it could not tell (then `stat /dev/console` is asked)."""

    decided: bool
    name: str = ""
    uid: int | None = None
    gid: int | None = None

    @property
    def someone(self) -> bool:
        """A user is on the console: not the login window, Setup Assistant or root."""
        return self.decided and self.name not in NOT_A_USER


def console_from_scutil(text: str) -> ConsoleAnswer:
    """The user of the session that is ON CONSOLE; the top-level Name may be someone else."""
    d = parse_scutil(text)
    sessions = d.get("SessionInfo")
    if isinstance(sessions, list) and sessions:
        on = [s for s in sessions if isinstance(s, dict) and s.get("kCGSSessionOnConsoleKey") == "TRUE"]
        if not on:
            return ConsoleAnswer(False)
        s = on[0]
        uid = _num(s.get("kCGSSessionUserIDKey"))
        name = s.get("kCGSSessionUserNameKey", "")
        if not name and uid is not None and uid == _num(d.get("UID")):
            name = d.get("Name", "")
        return ConsoleAnswer(True, name, uid, _num(s.get("kCGSSessionGroupIDKey")))
    if d.get("Name"):
        return ConsoleAnswer(True, d["Name"], _num(d.get("UID")), _num(d.get("GID")))
    return ConsoleAnswer(False)


def console_from_stat(text: str) -> ConsoleAnswer:
    """`stat -f %Su:%u:%g /dev/console` → the owner of the console device."""
    parts = text.strip().splitlines()[-1].split(":") if text.strip() else []
    if len(parts) != 3:
        return ConsoleAnswer(False)
    return ConsoleAnswer(True, parts[0], _num(parts[1]), _num(parts[2]))


def _num(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


# --- the platform --------------------------------------------------------------------------------


def _lookup(name: str) -> tuple[int, int, Path] | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid, Path(entry.pw_dir)


class MacOSPlatform(LaunchdOperations):
    """`Platform` on a real Mac, running as root."""

    def __init__(
        self,
        paths: Paths | None = None,
        *,
        commands: Commands | None = None,
        user_lookup: Callable[[str], tuple[int, int, Path] | None] = _lookup,
    ) -> None:
        self.paths = paths or Paths()
        self.cmd = commands or Commands()
        self._launchd = LaunchctlClient(self.cmd.launchctl)
        self._lookup = user_lookup

    async def _run(self, *argv: str, timeout: float = SHORT) -> process.Completed:
        try:
            result = await process.run(list(argv), timeout=timeout)
        except CommandError as exc:
            raise PlatformError(str(exc)) from None
        if result.timed_out:
            raise PlatformError(f"{argv[0]} {argv[1] if len(argv) > 1 else ''} timed out after {timeout:g} s")
        return result

    # --- facts -----------------------------------------------------------------------------------

    async def facts(self) -> Facts:
        arm64 = await self._run(self.cmd.sysctl, "-in", "hw.optional.arm64")
        translated = await self._run(self.cmd.sysctl, "-in", "sysctl.proc_translated")
        version = await self._run(self.cmd.sw_vers, "-productVersion")
        model = await self._run(self.cmd.sysctl, "-n", "hw.model")
        if not version.ok or not version.tail.strip():
            raise PlatformError(f"sw_vers -productVersion failed: {version.tail.strip()[-200:]}")
        native_arm = arm64.tail.strip() == "1" or translated.tail.strip() == "1"
        return Facts(
            arch="arm64" if native_arm else "x86_64",
            os_version=version.tail.strip().splitlines()[-1].strip(),
            model=model.tail.strip().splitlines()[-1].strip() if model.ok and model.tail.strip() else "",
            serial=await self._serial(),
        )

    async def _serial(self) -> str:
        result = await self._run(self.cmd.ioreg, "-c", "IOPlatformExpertDevice", "-d", "2", "-a")
        if not result.ok:
            return ""
        try:
            data = plistlib.loads(result.tail.encode("utf-8"))
        except (plistlib.InvalidFileException, ExpatError, ValueError):
            return ""
        return _find_key(data, "IOPlatformSerialNumber")

    # --- the console -----------------------------------------------------------------------------

    async def console_user(self) -> ConsoleUser | None:
        script = f"printf 'show State:/Users/ConsoleUser\\n' | {shlex.quote(self.cmd.scutil)}"
        result = await self._run(self.cmd.sh, "-c", script)
        answer = console_from_scutil(result.tail) if result.ok else ConsoleAnswer(False)
        if not answer.decided:
            stat = await self._run(self.cmd.stat, "-f", "%Su:%u:%g", "/dev/console")
            answer = console_from_stat(stat.tail) if stat.ok else ConsoleAnswer(False)
        if not answer.someone:
            return None
        found = self._lookup(answer.name)
        uid = answer.uid if answer.uid is not None else (found[0] if found else None)
        gid = answer.gid if answer.gid is not None else (found[1] if found else 20)
        if uid is None or uid == 0:
            return None
        home = found[2] if found else Path("/Users") / answer.name
        return ConsoleUser(answer.name, uid, gid, home)

    # --- packages --------------------------------------------------------------------------------

    async def install_pkg(
        self, package: Path, on_progress: ProgressCallback | None = None, *, timeout: float = 3600.0
    ) -> InstallResult:
        out = InstallerOutput()

        def line(text: str) -> None:
            moved = out.feed(text)
            if moved is not None and on_progress is not None:
                on_progress(*moved)

        argv = [self.cmd.installer, "-verboseR", "-pkg", str(package), "-target", "/"]
        started = time.monotonic()
        try:
            result = await process.run(argv, timeout=timeout, on_line=line)
        except CommandError as exc:
            raise InstallError(str(exc), None) from None
        if result.timed_out:
            raise InstallError(
                f"installer timed out after {timeout:g} s on {package.name}", None, tail=result.tail
            )
        if result.returncode != 0 or not out.succeeded:
            reason = out.reason or out.last_message or "no reason given"
            raise InstallError(
                f"installer failed on {package.name} (exit {result.returncode}): {reason}",
                result.returncode,
                reason,
                result.tail,
            )
        action, ids = _package_intent(package)
        return InstallResult(
            package=package,
            action=out.action or "install",
            postinstall_action=action,
            duration=time.monotonic() - started,
            phases=tuple(out.phases),
            identifiers=ids,
        )

    async def package_team(self, package: Path) -> PackageTeam:
        """Ask pkgutil, so that the system evaluates the chain to Apple's root (and revocation)."""
        result = await self._run(self.cmd.pkgutil, "--check-signature", str(package))
        return parse_check_signature(result.tail)

    async def system_proxy(self) -> SystemProxy | None:
        result = await self._run(self.cmd.scutil, "--proxy")
        return parse_scutil_proxy(result.tail) if result.ok else None

    async def receipt(self, pkgid: str) -> Receipt | None:
        result = await self._run(self.cmd.pkgutil, "--pkg-info-plist", checked_id("package id", pkgid))
        if _NO_RECEIPT.search(result.tail):
            return None
        if not result.ok:
            raise PlatformError(
                f"pkgutil --pkg-info-plist {pkgid} exited with {result.returncode}: {_last(result)}"
            )
        return parse_pkg_info_plist(result.tail, pkgid)

    async def forget_receipt(self, pkgid: str) -> bool:
        result = await self._run(self.cmd.pkgutil, "--forget", checked_id("package id", pkgid))
        if _NO_RECEIPT.search(result.tail):
            return False
        if not result.ok:
            raise PlatformError(f"pkgutil --forget {pkgid} exited with {result.returncode}: {_last(result)}")
        return True

    # --- launchd: one client shared with the sandbox -------------------------------------------

    @property
    def launchd(self) -> LaunchctlClient:
        return self._launchd

    async def gui_uids(self) -> set[int]:
        """Every GUI login session runs a loginwindow as its user, whether or not it has the console."""
        result = await self._run(self.cmd.ps, "-axo", "uid=,comm=")
        uids: set[int] = set()
        for line in result.tail.splitlines():
            uid, _, comm = line.strip().partition(" ")
            if uid.isdigit() and int(uid) != 0 and comm.strip().endswith("/loginwindow"):
                uids.add(int(uid))
        return uids

    async def start_agent(self, user: ConsoleUser, *, restart: bool = False) -> None:
        await self.launchd.start_agent(
            user.uid, self.paths.launch_agent_plist, self.paths.agent_label, restart=restart
        )

    def user_command(
        self, user: ConsoleUser, argv: Sequence[str], env: Mapping[str, str]
    ) -> tuple[list[str], Mapping[str, str] | None]:
        """`launchctl asuser` puts the program in the user's bootstrap namespace; sudo makes it theirs."""
        if user.uid == 0 or user.name in NOT_A_USER:
            raise PlatformError(f"refusing to run as {user.name!r}: user steps never run as root")
        assigns = [f"{k}={v}" for k, v in env.items()]
        command = self.launchd.asuser(
            user.uid, self.cmd.sudo, "-u", user.name, "-H", "--", self.cmd.env, *assigns, *argv
        )
        return command, None

    async def reboot(self) -> None:
        result = await self._run(self.cmd.shutdown, "-r", "now")
        if not result.ok:
            raise PlatformError(f"shutdown -r now failed (exit {result.returncode}): {_last(result)}")

    async def logout(self, user: ConsoleUser) -> None:
        await self.launchd.logout(user.uid)


def _package_intent(package: Path) -> tuple[str, tuple[str, ...]]:
    """What the package asks for after install, read from the package itself (best effort)."""
    from bootstrapper.flatpkg import FlatPackage

    order = ("none", "logout", "restart", "shutdown")
    try:
        with FlatPackage(package) as pkg:
            actions = [c.info.postinstall_action for c in pkg.components]
            ids = tuple(c.info.identifier for c in pkg.components)
    except PackageError:
        return "none", ()
    worst = max((a for a in actions if a in order), key=order.index, default="none")
    return worst, ids


def _find_key(data: object, key: str) -> str:
    if isinstance(data, dict):
        if isinstance(data.get(key), str):
            return str(data[key])
        data = list(data.values())
    if isinstance(data, list):
        for item in data:
            found = _find_key(item, key)
            if found:
                return found
    return ""


def _last(result: process.Completed) -> str:
    lines = result.tail.strip().splitlines()
    return lines[-1] if lines else "no output"
