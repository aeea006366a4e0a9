"""The seam between the engine and the operating system: the `Platform` protocol and its values.

Two implementations: `macos.MacOSPlatform` runs the real commands (`installer`, `pkgutil`,
`launchctl`, `scutil`, `sysctl`, `sw_vers`); `sandbox.SandboxPlatform` simulates a Mac under a root
prefix for the demo, the end-to-end tests and admins' dry runs. One contract test suite holds
both to the same behaviour where they must agree.

Conventions every implementation keeps:
- Anything that runs a program is `async` and goes through `bootstrapper.process.run`.
- Operations are idempotent where launchd and pkgutil allow it: booting out a service that is not
  loaded, bootstrapping one that already is, forgetting a receipt that does not exist all succeed
  (and say which case it was in their return value).
- Failures raise `PlatformError` subclasses (`InstallError`, `LaunchdError`,
  `ServiceNotLoadedError`) carrying the exit code and the reason the OS gave; never a bare
  `CommandError` for an expected failure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from bootstrapper import process
from bootstrapper.manifest.facts import Facts
from bootstrapper.paths import Paths
from bootstrapper.process import Completed

#: launchd's system domain; per-user GUI domains are `gui/<uid>` (see `gui_domain`).
SYSTEM_DOMAIN = "system"
#: Accounts that are "somebody" on the console but mean that nobody has logged in.
NOT_A_USER = frozenset({"loginwindow", "_mbsetupuser", "root", ""})

#: Called with (percent 0-100, phase text) as an install goes; the phase text is as localized
#: as `installer` printed it, without its trailing ellipsis.
ProgressCallback = Callable[[float, str], None]


def gui_domain(uid: int) -> str:
    return f"gui/{uid}"


def service_target(domain: str, label: str) -> str:
    """`system/org.example.daemon` or `gui/501/org.example.agent`."""
    return f"{domain}/{label}"


def check_domain(domain: str) -> str:
    """Only the two domains we use; anything else is a programming error, said plainly."""
    if domain == SYSTEM_DOMAIN:
        return domain
    head, _, uid = domain.partition("/")
    if head == "gui" and uid.isdigit():
        return domain
    raise ValueError(f"launchd domain must be 'system' or 'gui/<uid>', got {domain!r}")


@dataclass(frozen=True)
class ConsoleUser:
    """The user logged in at the console: the one whose session gets the agent and user steps."""

    name: str
    uid: int
    gid: int
    home: Path


@dataclass(frozen=True)
class Receipt:
    """What `pkgutil --pkg-info-plist` reports for an installed package."""

    pkgid: str
    version: str
    #: Relative to the volume, as pkgutil prints it: "" for "/", "usr/local/bin/" keeps its slash.
    location: str
    volume: str
    #: Seconds since the epoch.
    install_time: int
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class InstallResult:
    """A successful install (a failed one raises `InstallError`)."""

    package: Path
    #: "install" or "upgrade", as installer said ("Installing at base path" / "Upgrading …").
    action: str
    #: What the package asks for afterwards: "none", "logout", "restart" or "shutdown".
    postinstall_action: str
    duration: float
    #: Phases in the order seen (deduplicated), localized as printed.
    phases: tuple[str, ...] = ()
    #: The component identifiers that were installed, when known.
    identifiers: tuple[str, ...] = ()

    @property
    def restart_required(self) -> bool:
        return self.postinstall_action in ("restart", "shutdown")


@dataclass(frozen=True)
class PackageTeam:
    """Who signed a package, as the platform's signature check sees it."""

    #: The Team ID of a Developer ID Installer certificate whose signature checked out; None otherwise.
    team: str | None
    #: What was found, for a message: the leaf certificate's name, or why there is no team.
    found: str


@dataclass(frozen=True)
class SystemProxy:
    """The Mac's HTTPS proxy and the hosts it must not be used for, as the system settings say."""

    #: `http://host:port`.
    url: str
    #: The "Bypass proxy settings for these Hosts & Domains" entries, as written (`ExceptionsList`).
    exceptions: tuple[str, ...] = ()
    #: Names without a dot go direct (`ExcludeSimpleHostnames`).
    exclude_simple: bool = False


@dataclass(frozen=True)
class ServiceInfo:
    """A loaded launchd service, from `launchctl print <domain>/<label>`."""

    target: str
    state: str
    pid: int | None
    last_exit_code: str | None
    path: str | None
    properties: Mapping[str, str]


@runtime_checkable
class Platform(Protocol):
    """What the engine may ask of the OS. See the module docstring for the shared conventions."""

    paths: Paths

    async def facts(self) -> Facts:
        """Native architecture (Rosetta-aware), OS version, model and serial."""
        ...

    async def console_user(self) -> ConsoleUser | None:
        """The user on the console now, or None (login window, Setup Assistant, nobody)."""
        ...

    async def install_pkg(
        self, package: Path, on_progress: ProgressCallback | None = None, *, timeout: float = 3600.0
    ) -> InstallResult:
        """Install a flat package on the boot volume; raises `InstallError` with code and reason."""
        ...

    async def package_team(self, package: Path) -> PackageTeam:
        """The Developer ID Installer team whose valid signature the package carries (checked by the
        system on a Mac), or a `team` of None with what was found instead."""
        ...

    async def system_proxy(self) -> SystemProxy | None:
        """The Mac's HTTPS proxy with its exceptions (`scutil --proxy`), or None; PAC files are not
        evaluated."""
        ...

    async def receipt(self, pkgid: str) -> Receipt | None:
        """The receipt of an installed package, or None when there is none."""
        ...

    async def forget_receipt(self, pkgid: str) -> bool:
        """Remove a receipt; False when there was none (which is not an error)."""
        ...

    async def bootstrap(self, domain: str, plist: Path) -> bool:
        """Load a launchd job; False when it was already loaded. Invalid plist → `LaunchdError`."""
        ...

    async def bootout(self, domain: str, label: str) -> bool:
        """Unload a launchd job; False when it was not loaded (which is not an error)."""
        ...

    async def kickstart(self, domain: str, label: str, *, restart: bool = False) -> None:
        """Start a loaded job now (`-k`: kill and restart). Not loaded → `ServiceNotLoadedError`."""
        ...

    async def service(self, domain: str, label: str) -> ServiceInfo | None:
        """What launchd says about a job (`launchctl print`), or None when it is not loaded."""
        ...

    async def is_loaded(self, domain: str, label: str) -> bool: ...

    async def gui_uids(self) -> set[int]:
        """The uids that have a GUI domain now, as the system knows them (not as we remember them):
        self-removal boots our agent out of each."""
        ...

    async def start_agent(self, user: ConsoleUser, *, restart: bool = False) -> None:
        """Start our LaunchAgent in the user's GUI session, as launchd would at login; `restart`
        replaces a copy that still runs (hung, or dropped by the daemon)."""
        ...

    async def run_as_user(
        self,
        user: ConsoleUser,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> Completed:
        """Run a program in the user's session, as that user (never as root). How is the platform's
        (`user_command`); running it, with a timeout and its output streamed, is the same on both."""
        command, full_env = self.user_command(user, argv, env or {})
        return await process.run(command, timeout=timeout, env=full_env, on_line=on_line)

    def user_command(
        self, user: ConsoleUser, argv: Sequence[str], env: Mapping[str, str]
    ) -> tuple[list[str], Mapping[str, str] | None]:
        """The command line that runs `argv` as `user` with `env` added, and the environment it starts
        with (None: the clean default). Refuses, with `PlatformError`, a user it must not run as."""
        ...

    async def reboot(self) -> None:
        """Restart the Mac. Call it last: once it returns, the system is going down."""
        ...

    async def logout(self, user: ConsoleUser) -> None:
        """End the user's GUI session."""
        ...
