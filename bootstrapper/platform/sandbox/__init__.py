"""A simulated Mac under a root prefix: no root privileges, on Linux or macOS.

What it does, and how that mirrors the real thing:
- `install_pkg` reads the package with `flatpkg`, refuses what `installer` would refuse (wrong
  architecture, too old an OS, a missing component), checks every payload entry before writing
  any, runs preinstall, extracts the payload under `<root>/<install-location>`, runs postinstall
  (with installer's four arguments), and writes a receipt plist with the fields that
  `pkgutil --pkg-info-plist` prints. Progress phases are the English ones `installer` prints.
- facts are this machine's unless overridden (`arch`, `os_version`, `model`) to rehearse another Mac.
- before any `sandbox login`, the console user is whoever runs the sandbox, with a home under the
  root, after an optional simulated login delay.
- launchd calls go through the same `LaunchctlClient` as on the Mac, with the same argv, to the
  sandbox's own `launchctl` (`<root>/.sandbox/bin/launchctl`, see `launchd.py`): real jobs, real
  processes, exit codes as recorded on Macs. Each operation is also a line of a JSON journal
  (`Paths.launchd_journal`).
- the console user is who `bootstrapper sandbox login` put there (scutil's view of it); reboot and
  logout go to the sandbox's launchd, which carries them out when it is booted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import platform as host
import plistlib
import pwd
import re
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.parsers.expat import ExpatError

from bootstrapper import process
from bootstrapper.atomic import write_atomic
from bootstrapper.errors import CommandError, InstallError, LaunchdError, PackageError, PlatformError
from bootstrapper.flatpkg import Component, FlatPackage
from bootstrapper.flatpkg.extract import extract, location_parts, scan
from bootstrapper.manifest.facts import Facts
from bootstrapper.paths import Paths
from bootstrapper.platform.base import (
    ConsoleUser,
    InstallResult,
    PackageTeam,
    ProgressCallback,
    Receipt,
    SystemProxy,
    gui_domain,
    service_target,
)
from bootstrapper.platform.launchctl import LaunchctlClient, LaunchdOperations
from bootstrapper.platform.macos import console_from_scutil, receipt_from_plist
from bootstrapper.platform.sandbox.control import request
from bootstrapper.platform.sandbox.launchctl import ensure_shim
from bootstrapper.platform.sandbox.launchd import (
    SandboxStateError,
    append_journal,
    launcher_argv,
    read_state,
    scutil_console,
)

#: installer's own words when a script fails (the real message, from the recorded transcripts).
SCRIPT_FAILED = (
    "The Installer encountered an error that caused the installation to fail. "
    "Contact the software manufacturer for assistance."
)
_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]*$")
#: SHA-256 of Apple Root CA's certificate: the one root a Developer ID chain may end at (the same
#: fingerprint pkgutil prints, tests/data/macos/pkgutil-check-signature-*).
APPLE_ROOT_CA_SHA256 = "b0b1730ecbc7ff4505142c49f1295e6eda6bcaed7e2c68c5be91b5a11001f024"
_ORDER = ("none", "logout", "restart", "shutdown")


def _host_arch() -> str:
    return "arm64" if host.machine().lower() in ("arm64", "aarch64") else "x86_64"


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:4])


class SandboxPlatform(LaunchdOperations):
    """`Platform` for a simulated Mac whose `/` is `paths.root`."""

    def __init__(
        self,
        paths: Paths,
        *,
        arch: str | None = None,
        os_version: str | None = None,
        model: str | None = None,
        serial: str | None = None,
        login_delay: float = 0.0,
        user: ConsoleUser | None = None,
        agent_argv: Sequence[str] | None = None,
        script_timeout: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.paths = paths
        default = Facts()
        self._facts = Facts(
            arch=arch or _host_arch(),
            os_version=os_version or host.mac_ver()[0] or default.os_version,
            model=model or default.model,
            serial=serial if serial is not None else "SANDBOX0001",
        )
        if self._facts.arch not in ("arm64", "x86_64"):
            raise ValueError(f"arch must be arm64 or x86_64, got {self._facts.arch!r}")
        self._clock = clock
        self._login_at = clock() + login_delay
        self._user = user
        self._agent_argv = list(agent_argv) if agent_argv else None
        self.agent_argv = self._agent_argv or launcher_argv(paths.root, ["agent"])
        self._script_timeout = script_timeout
        self._install_lock = asyncio.Lock()

    # --- facts and the console -------------------------------------------------------------------

    async def facts(self) -> Facts:
        return self._facts

    async def console_user(self) -> ConsoleUser | None:
        """Who `sandbox login` put on the console, read as scutil reports it; before any login
        session is managed there, whoever runs the sandbox (a plain `run --sandbox`)."""
        if self._clock() < self._login_at:
            return None
        if self._user is not None:
            return self._user
        state = read_state(self.paths.root)
        if "console" in state:
            answer = console_from_scutil(scutil_console(state))
            if not answer.someone or not answer.uid:
                return None
            home = self.paths.system(f"/Users/{answer.name}")
            if os.geteuid() != 0:
                # Without root the user's processes (their agent) really run as the caller: the uid the
                # kernel reports for them, and owns their files. Their launchd domain stays gui/501.
                return ConsoleUser(answer.name, os.getuid(), os.getgid(), home)
            return ConsoleUser(answer.name, answer.uid, answer.gid if answer.gid is not None else 20, home)
        entry = pwd.getpwuid(os.getuid())
        home = self.paths.system(f"/Users/{entry.pw_name}")
        home.mkdir(parents=True, exist_ok=True)
        return ConsoleUser(entry.pw_name, entry.pw_uid, entry.pw_gid, home)

    # --- packages --------------------------------------------------------------------------------

    async def install_pkg(
        self, package: Path, on_progress: ProgressCallback | None = None, *, timeout: float = 3600.0
    ) -> InstallResult:
        loop = asyncio.get_running_loop()

        def progress(percent: float, phase: str) -> None:
            if on_progress is not None:
                loop.call_soon_threadsafe(on_progress, percent, phase)

        phases: list[str] = []

        def phase(percent: float, text: str) -> None:
            if text not in phases:
                phases.append(text)
            progress(percent, text)

        started = time.monotonic()
        phase(0.0, "Preparing for installation")
        async with self._install_lock:
            try:
                async with asyncio.timeout(timeout):
                    return await self._install(Path(package), phase, progress, phases, started)
            except TimeoutError:
                raise InstallError(
                    f"install of {Path(package).name} timed out after {timeout:g} s", None
                ) from None
            except PackageError as exc:
                raise InstallError(f"installer failed on {Path(package).name}: {exc}", 1, str(exc)) from None

    async def _install(
        self,
        package: Path,
        phase: Callable[[float, str], None],
        progress: Callable[[float, str], None],
        phases: list[str],
        started: float,
    ) -> InstallResult:
        with FlatPackage(package) as pkg:
            self._check_requirements(pkg, package)
            order = pkg.install_order()
            phase(2.0, "Preparing the disk")
            phase(4.0, f"Preparing {package.stem}")
            upgrade = any(self._read_receipt(c.info.identifier) is not None for c in order)
            phase(6.0, "Configuring the installation")
            for comp in order:
                await asyncio.to_thread(self._check_payload, pkg, comp)
            share = 80.0 / max(1, len(order))
            for n, comp in enumerate(order):
                base = 10.0 + n * share
                scripts = await self._unpack_scripts(pkg, comp)
                try:
                    if scripts is not None:
                        phase(base, "Running package scripts")
                        await self._script(package, comp, scripts, "preinstall")
                    phase(base + share * 0.1, "Writing files")
                    await asyncio.to_thread(
                        self._write_files, pkg, comp, base + share * 0.1, share * 0.8, progress
                    )
                    if scripts is not None:
                        phase(base + share * 0.9, "Running package scripts")
                        await self._script(package, comp, scripts, "postinstall")
                finally:
                    if scripts is not None:
                        await asyncio.to_thread(_remove_tree, scripts)
                if comp.has_payload:
                    self._write_receipt(comp)
            phase(95.0, "Registering updated components")
            phase(100.0, "The software was successfully installed")
            action = max((c.info.postinstall_action for c in order), key=_severity, default="none")
            return InstallResult(
                package=package,
                action="upgrade" if upgrade else "install",
                postinstall_action=action if action in _ORDER else "none",
                duration=time.monotonic() - started,
                phases=tuple(phases),
                identifiers=tuple(c.info.identifier for c in order),
            )

    async def install_files(
        self, identifier: str, version: str, files: Mapping[str, bytes], *, location: str = "/"
    ) -> None:
        """Lay down `files` (paths relative to `location`) and the receipt that `install_pkg` leaves for a
        component package of them, without building one: bootstrapper ships no package writer, yet a
        sandbox needs our own install to be real, so that self-removal has real things to remove.
        """
        self._receipt_file(identifier)  # refuses a bad id before any file is written
        base = location_parts(location, PackageError)
        for rel in files:
            parts = [p for p in rel.split("/") if p not in ("", ".")]
            if rel.startswith("/") or not parts or ".." in parts:
                raise PlatformError(f"install_files: {rel!r} must be a relative path without '..'")
        target = self.paths.root.joinpath(*base)

        def write() -> None:
            for rel, data in sorted(files.items()):
                dest = target / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(dest, data, mode=0o644)

        async with self._install_lock:
            await asyncio.to_thread(write)
            self._store_receipt(identifier, version, location)

    def _check_requirements(self, pkg: FlatPackage, package: Path) -> None:
        dist = pkg.distribution
        if dist is None:
            return
        arch = self._facts.arch
        if dist.host_architectures and arch not in dist.host_architectures:
            reason = f"this package runs on {', '.join(dist.host_architectures)}, not on this {arch} Mac"
            raise InstallError(f"installer refused {package.name}: {reason}", 1, reason)
        if dist.minimum_os and _version_key(self._facts.os_version) < _version_key(dist.minimum_os):
            reason = (
                f"this package needs macOS {dist.minimum_os} or later, this Mac has {self._facts.os_version}"
            )
            raise InstallError(f"installer refused {package.name}: {reason}", 1, reason)

    def _check_payload(self, pkg: FlatPackage, comp: Component) -> None:
        """Every entry checked and every checksum verified before the first byte is written."""
        location_parts(comp.info.effective_install_location, pkg.error)
        for which, present in (("Payload", comp.has_payload), ("Scripts", comp.has_scripts)):
            if present:
                with pkg.open_payload(comp, which) as reader:
                    scan(reader)

    def _write_files(
        self,
        pkg: FlatPackage,
        comp: Component,
        start: float,
        span: float,
        progress: Callable[[float, str], None],
    ) -> None:
        if not comp.has_payload:
            return
        total = max(1, (comp.info.install_kbytes or 0) * 1024)
        last = [0.0]

        def on_bytes(done: int) -> None:
            pct = start + span * min(1.0, done / total)
            if pct - last[0] >= 1.0:
                last[0] = pct
                progress(pct, "Writing files")

        with pkg.open_payload(comp) as reader:
            extract(reader, self.paths.root, location=comp.info.effective_install_location, on_bytes=on_bytes)

    async def _unpack_scripts(self, pkg: FlatPackage, comp: Component) -> Path | None:
        if not comp.has_scripts:
            return None
        tmp_root = self.paths.system("/private/tmp")
        tmp_root.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="PKInstallSandbox.", dir=tmp_root))

        def unpack() -> None:
            with pkg.open_payload(comp, "Scripts") as reader:
                extract(reader, folder)

        await asyncio.to_thread(unpack)
        return folder

    async def _script(self, package: Path, comp: Component, folder: Path, phase: str) -> None:
        name = comp.info.scripts.get(phase) or (f"./{phase}" if (folder / phase).is_file() else None)
        if name is None:
            return
        script = folder / name
        if not script.is_file() or script.is_symlink():
            raise InstallError(f"{package.name}: the {phase} script {name!r} is missing", 1, SCRIPT_FAILED)
        dest = self.paths.system(comp.info.effective_install_location)
        argv = [str(script), str(package), str(dest), str(self.paths.root), "/"]
        env = {
            "PACKAGE_PATH": str(package),
            "DSTVOLUME": str(self.paths.root),
            "DSTROOT": str(dest),
            "INSTALLER_TEMP": str(folder),
            "SCRIPT_NAME": phase,
            "INSTALL_PKG_SESSION_ID": comp.info.identifier,
            "BOOTSTRAPPER_ROOT": str(self.paths.root),
            "HOME": str(self.paths.system("/var/root")),
            "USER": "root",
            "TMPDIR": str(folder),
        }
        try:
            result = await process.run(argv, timeout=self._script_timeout, env=env, cwd=folder)
        except CommandError as exc:
            raise InstallError(
                f"{package.name}: the {phase} script could not start: {exc}", 1, SCRIPT_FAILED
            ) from None
        if result.timed_out:
            raise InstallError(
                f"{package.name}: the {phase} script timed out after {self._script_timeout:g} s",
                None,
                SCRIPT_FAILED,
                result.tail,
            )
        if result.returncode != 0:
            last = result.tail.strip().splitlines()[-1] if result.tail.strip() else "no output"
            raise InstallError(
                f"installer failed on {package.name} (exit 1): {phase} of {comp.info.identifier} "
                f"exited with {result.returncode}: {last}",
                1,
                SCRIPT_FAILED,
                result.tail,
            )

    # --- receipts --------------------------------------------------------------------------------

    def _receipt_file(self, pkgid: str) -> Path:
        if not _ID.match(pkgid) or ".." in pkgid:
            raise PlatformError(f"invalid package id {pkgid!r}")
        return self.paths.receipts_dir / f"{pkgid}.plist"

    def _write_receipt(self, comp: Component) -> None:
        info = comp.info
        self._store_receipt(info.identifier, info.version, info.effective_install_location)

    def _store_receipt(self, pkgid: str, version: str, location: str) -> None:
        data: dict[str, Any] = {
            "pkgid": pkgid,
            "pkg-version": version,
            "install-location": location.lstrip("/"),
            "install-time": int(time.time()),
            "volume": "/",
            "receipt-plist-version": 1.0,
        }
        file = self._receipt_file(pkgid)
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f".{file.name}.tmp-{os.getpid()}")
        tmp.write_bytes(plistlib.dumps(data))
        os.replace(tmp, file)

    def _read_receipt(self, pkgid: str) -> Receipt | None:
        file = self._receipt_file(pkgid)
        try:
            data = plistlib.loads(file.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, plistlib.InvalidFileException, ExpatError, ValueError) as exc:
            raise PlatformError(f"{file}: unreadable receipt ({exc})") from None
        return receipt_from_plist(data, pkgid)

    async def package_team(self, package: Path) -> PackageTeam:
        return await asyncio.to_thread(signed_team, package)

    async def system_proxy(self) -> SystemProxy | None:
        """The simulated Mac has no network settings: only the `proxy` setting applies."""
        return None

    async def receipt(self, pkgid: str) -> Receipt | None:
        return self._read_receipt(pkgid)

    async def forget_receipt(self, pkgid: str) -> bool:
        try:
            self._receipt_file(pkgid).unlink()
        except FileNotFoundError:
            return False
        return True

    # --- launchd: the Mac's client, pointed at the sandbox's launchctl ---------------------------

    @property
    def launchd(self) -> LaunchctlClient:
        """`launchctl` calls with the Mac's argv; only the executable differs (the sandbox's shim)."""
        return LaunchctlClient(str(ensure_shim(self.paths.root)))

    def journal(self) -> list[dict[str, Any]]:
        """Every launchd operation recorded so far (a torn last line is skipped)."""
        try:
            text = self.paths.launchd_journal.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        entries = []
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                entries.append(json.loads(line))
        return entries

    def loaded(self) -> dict[str, dict[str, Any]]:
        """target → what the sandbox's launchd has loaded (its definition, pid, last exit)."""
        return dict(read_state(self.paths.root)["jobs"])

    async def gui_uids(self) -> set[int]:
        """From the sandbox launchd's own state: the domains that hold jobs, and the login sessions."""
        try:
            state = read_state(self.paths.root)
        except SandboxStateError as exc:
            raise PlatformError(str(exc)) from None
        uids = {int(key.split("/")[1]) for key in state["jobs"] if key.startswith("gui/")}
        for name in state["sessions"]:
            uid = state["users"].get(name, {}).get("uid")
            if isinstance(uid, int):
                uids.add(uid)
        return uids

    async def start_agent(self, user: ConsoleUser, *, restart: bool = False) -> None:
        """As on the Mac: bootstrap our LaunchAgent in gui/<uid> and kickstart it. With `agent_argv`
        given (a test seam), that program is started instead of the plist's, detached, as launchd would."""
        if self._agent_argv is None:
            await self.launchd.start_agent(
                self._domain_uid(user), self.paths.launch_agent_plist, self.paths.agent_label, restart=restart
            )
            return
        domain = gui_domain(self._domain_uid(user))
        target = service_target(domain, self.paths.agent_label)
        if self.paths.launch_agent_plist.exists():
            await self.launchd.bootstrap(domain, self.paths.launch_agent_plist)
        log = self.paths.log_dir / "sandbox-agent.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "bootstrapper.platform._spawn", str(log), *self.agent_argv]
        result = await process.run(argv, timeout=30.0)
        pid = _num(result.tail.strip().splitlines()[-1]) if result.ok and result.tail.strip() else None
        if pid is None:
            raise LaunchdError(
                f"could not start the agent: {result.tail.strip()[-200:]}", result.returncode, target
            )
        append_journal(self.paths, "spawn", target=target, pid=pid, argv=self.agent_argv, user=user.name)

    def user_command(
        self, user: ConsoleUser, argv: Sequence[str], env: Mapping[str, str]
    ) -> tuple[list[str], Mapping[str, str] | None]:
        """Runs as whoever runs the sandbox (that is the console user here), with the user's home."""
        full_env = {
            "HOME": str(user.home),
            "USER": user.name,
            "LOGNAME": user.name,
            "BOOTSTRAPPER_ROOT": str(self.paths.root),
            **env,
        }
        return list(argv), full_env

    async def reboot(self) -> None:
        """A booted sandbox shuts every job down and boots again; otherwise it is only recorded."""
        append_journal(self.paths, "reboot", result="recorded")
        await asyncio.to_thread(request, self.paths.root, {"op": "reboot"})

    async def logout(self, user: ConsoleUser) -> None:
        await self.launchd.logout(self._domain_uid(user))

    def _domain_uid(self, user: ConsoleUser) -> int:
        """The uid of the user's gui domain: a sandbox user's own (alice: 501), also when, without
        root, `console_user` reports the caller's uid that her processes run as."""
        try:
            known = read_state(self.paths.root)["users"].get(user.name)
        except SandboxStateError:
            known = None
        uid = known.get("uid") if isinstance(known, dict) else None
        return uid if isinstance(uid, int) else user.uid


def signed_team(package: Path) -> PackageTeam:
    """What `pkgutil --check-signature` decides, done here: the RSA signature over the TOC checksum
    (which binds every file's checksum) matches the leaf's key, the chain runs leaf → intermediate →
    Apple Root CA (pinned by fingerprint), and the leaf is a Developer ID Installer certificate.
    Expiry and revocation are not evaluated (pkgutil accepts an expired leaf with a trusted timestamp).
    """
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes

    try:
        with FlatPackage(package) as pkg:
            blocks = [b for b in pkg.xar.signatures if b.style.upper() == "RSA"]
            sigs = [s for s in pkg.signatures() if s.style.upper() == "RSA"]
    except PackageError as exc:
        return PackageTeam(None, f"an unreadable package ({exc})")
    if not sigs or not sigs[0].certificates:
        return PackageTeam(None, "no signature")
    leaf, block = sigs[0].certificates[0], blocks[0]
    if not sigs[0].matches_leaf_key:
        return PackageTeam(None, f"{leaf.common_name} (the signature does not match the package)")
    try:
        chain = [x509.load_der_x509_certificate(raw) for raw in block.certificates]
        for cert, issuer in itertools.pairwise(chain):
            cert.verify_directly_issued_by(issuer)
        anchored = chain[-1].fingerprint(hashes.SHA256()).hex() == APPLE_ROOT_CA_SHA256
    except (ValueError, TypeError, InvalidSignature) as exc:
        why = str(exc) or "a certificate is not signed by the next one"
        return PackageTeam(None, f"{leaf.common_name} (broken certificate chain: {why})")
    if len(chain) < 2 or not anchored:
        return PackageTeam(None, f"{leaf.common_name} (not issued under Apple Root CA)")
    if not leaf.common_name.startswith("Developer ID Installer:") or not leaf.team:
        return PackageTeam(None, f"{leaf.common_name}, which is not a Developer ID Installer certificate")
    return PackageTeam(leaf.team, leaf.common_name)


def _severity(action: str) -> int:
    return _ORDER.index(action) if action in _ORDER else 0


def _num(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _remove_tree(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
