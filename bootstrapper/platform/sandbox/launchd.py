"""launchd for the simulated Mac: the `system` and `gui/<uid>` domains, real processes, login sessions.

One `Launchd` object answers `launchctl` argv with the output and exit codes of the real one (the
recordings in tests/data/macos/), and runs each job from its plist: `ProgramArguments`, `RunAtLoad`,
`KeepAlive` (true, or `SuccessfulExit`), `ThrottleInterval`, `ExitTimeOut` (SIGTERM to the job's process
group, SIGKILL after it), `LimitLoadToSessionType`, `StandardOutPath`/`StandardErrorPath`,
`EnvironmentVariables`, `WorkingDirectory`. Every job leads its own session and process group.

It lives in one of two ways:
- *booted* (`bootstrapper sandbox boot DIR`): one process holds `state.lock` for its lifetime, supervises
  the jobs (restarts, throttling) and serves a Unix socket; every `launchctl` and `sandbox login…` call
  is sent there, so a separate process sees and changes the running system.
- *not booted*: a `launchctl` call takes `state.lock`, changes the state file and returns. bootstrap
  records the job (it starts at the next boot); kickstart starts it now, detached and unsupervised, which
  is what `bootstrapper run --sandbox` relies on to start its agent without a booted sandbox.

State (`<root>/private/var/db/sandbox-launchd/state.json`, written atomically) holds the loaded jobs
with their definitions, pids and last exits, the disabled services, the users (uids from 501 up), the
login sessions and who has the console. Paths inside a plist are Mac paths: they are looked up under
the root; a program that is not there runs from this machine (`/bin/sh`), and our own launcher
(`/Library/bootstrapper/bin/bootstrapper daemon|agent`) runs this Python's `bootstrapper`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import json
import os
import plistlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from xml.parsers.expat import ExpatError

from bootstrapper.atomic import write_atomic
from bootstrapper.deploy.layout import LAUNCHER
from bootstrapper.paths import Paths
from bootstrapper.platform.base import NOT_A_USER

STATE_DIR = PurePosixPath("/private/var/db/sandbox-launchd")
FIRST_UID = 501
STAFF_GID = 20
#: launchd's defaults when a plist leaves the key out.
DEFAULT_THROTTLE = 10
DEFAULT_EXIT_TIMEOUT = 20
LAUNCHD_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"
_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
_LABEL = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]*$")

# launchctl's exit codes (tests/data/macos/SOURCES.md) and the usage code.
NOT_FOUND = 113
IO_ERROR = 5
INVALID_PLIST = 133
NO_DOMAIN = 125
USAGE = 64


@dataclass
class Reply:
    """What a `launchctl` (or control) call prints and exits with."""

    rc: int = 0
    out: str = ""
    err: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"rc": self.rc, "out": self.out, "err": self.err}


def state_dir(root: Path) -> Path:
    return Paths(root=root).system(STATE_DIR)


def state_file(root: Path) -> Path:
    return state_dir(root) / "state.json"


def socket_path(root: Path) -> Path:
    """Outside the simulated system, and short: Unix socket paths have a length limit."""
    return root / ".sandbox" / "launchd.sock"


def read_state(root: Path) -> dict[str, Any]:
    """The last saved state; an empty system when there is none yet."""
    try:
        data = json.loads(state_file(root).read_text(encoding="utf-8"))
    except FileNotFoundError:
        data = {}
    except (OSError, ValueError) as exc:
        raise SandboxStateError(
            f"{state_file(root)} is unreadable ({exc}); remove it to start afresh"
        ) from None
    if not isinstance(data, dict):
        raise SandboxStateError(f"{state_file(root)} is not a JSON object; remove it to start afresh")
    data.setdefault("jobs", {})
    data.setdefault("disabled", [])
    data.setdefault("users", {})
    data.setdefault("sessions", [])
    return data


class SandboxStateError(Exception):
    """The sandbox's launchd state cannot be used; the message says which file and what to do."""


# --- users and the console ----------------------------------------------------------------------


def check_user_name(name: str) -> str:
    if not _USER.match(name) or name in NOT_A_USER:
        raise ValueError(
            f"user name {name!r} is not usable: "
            "use a short lowercase name such as alice (not root or loginwindow)"
        )
    return name


def scutil_console(state: dict[str, Any]) -> str:
    """`show State:/Users/ConsoleUser` as scutil prints it for this state (see tests/data/macos/scutil-*)."""
    console = state.get("console")
    users: dict[str, dict[str, int]] = state.get("users", {})
    if not console:
        return "  No such key\n"
    lines = ["<dictionary> {"]
    if console in users:
        lines += [f"  GID : {users[console]['gid']}", f"  Name : {console}"]
    else:
        lines += ["  GID : 0", f"  Name : {console}"]
    sessions = [s for s in state.get("sessions", []) if s in users]
    if sessions:
        lines.append("  SessionInfo : <array> {")
        for n, name in enumerate(sessions):
            info = users[name]
            lines += [
                f"    {n} : <dictionary> {{",
                f"      kCGSSessionGroupIDKey : {info['gid']}",
                f"      kCGSSessionIDKey : {256 + n}",
                f"      kCGSSessionOnConsoleKey : {'TRUE' if name == console else 'FALSE'}",
                f"      kCGSSessionUserIDKey : {info['uid']}",
                f"      kCGSSessionUserNameKey : {name}",
                "      kCGSessionLoginDoneKey : TRUE",
                "    }",
            ]
        lines.append("  }")
    lines.append(f"  UID : {users[console]['uid'] if console in users else 0}")
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- jobs ---------------------------------------------------------------------------------------


@dataclass
class Job:
    domain: str
    label: str
    plist: str
    definition: dict[str, Any]
    pid: int | None = None
    last_exit: int | None = None
    last_signal: int | None = None
    runs: int = 0
    # Only while booted:
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    stopping: bool = field(default=False, repr=False)
    wake: asyncio.Event | None = field(default=None, repr=False)
    started_at: float = field(default=0.0, repr=False)

    @property
    def target(self) -> str:
        return f"{self.domain}/{self.label}"

    @property
    def argv(self) -> list[str]:
        args = self.definition.get("ProgramArguments")
        if isinstance(args, list) and args:
            return [str(a) for a in args]
        return [str(self.definition["Program"])]

    @property
    def throttle(self) -> float:
        return float(self.definition.get("ThrottleInterval", DEFAULT_THROTTLE))

    @property
    def exit_timeout(self) -> float:
        return float(self.definition.get("ExitTimeOut", DEFAULT_EXIT_TIMEOUT))

    @property
    def running(self) -> bool:
        return self.pid is not None

    def restarts_after(self, rc: int) -> bool:
        """KeepAlive: true always restarts; {SuccessfulExit: b} restarts when (exit 0) is b."""
        keep = self.definition.get("KeepAlive", False)
        if keep is True:
            return True
        if isinstance(keep, dict) and isinstance(keep.get("SuccessfulExit"), bool):
            return (rc == 0) is keep["SuccessfulExit"]
        return False

    def to_json(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "label": self.label,
            "plist": self.plist,
            "definition": self.definition,
            "pid": self.pid,
            "last_exit": self.last_exit,
            "last_signal": self.last_signal,
            "runs": self.runs,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        return cls(
            domain=data["domain"],
            label=data["label"],
            plist=data.get("plist", ""),
            definition=data["definition"],
            pid=data.get("pid"),
            last_exit=data.get("last_exit"),
            last_signal=data.get("last_signal"),
            runs=int(data.get("runs", 0)),
        )


def _session_types(definition: dict[str, Any]) -> set[str]:
    value = definition.get("LimitLoadToSessionType")
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {str(v) for v in value}
    return set()


def _domain_words(domain: str) -> str:
    """How launchctl names a domain in "Could not find service … in domain for …"."""
    return "system" if domain == "system" else f"user gui: {domain.partition('/')[2]}"


def _parse_domain(text: str) -> str | None:
    if text == "system":
        return text
    head, _, uid = text.partition("/")
    return text if head == "gui" and uid.isdigit() else None


def _split_target(text: str) -> tuple[str, str] | None:
    """`system/LABEL` or `gui/UID/LABEL` → (domain, label)."""
    if text.startswith("system/"):
        domain, label = "system", text.removeprefix("system/")
    elif text.startswith("gui/"):
        uid, _, label = text.removeprefix("gui/").partition("/")
        if not uid.isdigit():
            return None
        domain = f"gui/{uid}"
    else:
        return None
    return (domain, label) if label and "/" not in label else None


class Launchd:
    """The simulated launchd. `live` when it is the booted process supervising the jobs."""

    def __init__(self, root: Path, *, live: bool = False) -> None:
        self.root = root
        self.paths = Paths(root=root)
        self.live = live
        self.jobs: dict[str, Job] = {}
        self.disabled: set[str] = set()
        self.users: dict[str, dict[str, int]] = {}
        self.sessions: list[str] = []
        self.console: str | None = None
        self.managed = False
        self._load()

    # --- persistence -----------------------------------------------------------------------------

    def _load(self) -> None:
        data = read_state(self.root)
        self.jobs = {}
        for target, raw in data["jobs"].items():
            with contextlib.suppress(KeyError, TypeError, ValueError):
                self.jobs[target] = Job.from_json(raw)
        self.disabled = set(data["disabled"])
        self.users = {str(k): dict(v) for k, v in data["users"].items()}
        self.sessions = [str(s) for s in data["sessions"]]
        self.managed = "console" in data
        self.console = data.get("console")

    def save(self) -> None:
        data: dict[str, Any] = {
            "jobs": {t: j.to_json() for t, j in sorted(self.jobs.items())},
            "disabled": sorted(self.disabled),
            "users": self.users,
            "sessions": self.sessions,
        }
        if self.managed:
            data["console"] = self.console
        file = state_file(self.root)
        file.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
        write_atomic(file, text.encode("utf-8"), mode=0o644)

    def journal(self, op: str, **fields: object) -> None:
        append_journal(self.paths, op, **fields)

    # --- users and sessions ------------------------------------------------------------------------

    def user(self, name: str) -> dict[str, int]:
        """The account `name`, created with the next uid from 501 and a home under the root."""
        check_user_name(name)
        if name not in self.users:
            taken = {u["uid"] for u in self.users.values()}
            uid = next(n for n in range(FIRST_UID, FIRST_UID + 10000) if n not in taken)
            self.users[name] = {"uid": uid, "gid": STAFF_GID}
        info = self.users[name]
        home = self.home(name)
        home.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(home, info["uid"], info["gid"])
        return info

    def home(self, name: str) -> Path:
        return self.paths.system(f"/Users/{name}")

    def uid_session(self, uid: int) -> str | None:
        return next((n for n in self.sessions if self.users.get(n, {}).get("uid") == uid), None)

    def _gui_exists(self, domain: str) -> bool:
        """Without managed sessions (a plain `run --sandbox`), every gui domain exists, as for the caller."""
        if domain == "system" or not self.managed:
            return True
        return self.uid_session(int(domain.partition("/")[2])) is not None

    async def login(self, name: str) -> Reply:
        info = self.user(name)
        self.managed = True
        if name not in self.sessions:
            self.sessions.append(name)
            if self.live:
                await self._load_agents(info["uid"])
        self.console = name
        self.journal("login", user=name, uid=info["uid"], result="logged in")
        self.save()
        return Reply(0, f"{name} (uid {info['uid']}) has the console\n")

    def manage(self) -> Reply:
        """From now on the console is the sessions': the login window until somebody logs in."""
        if not self.managed:
            self.managed = True
            self.console = self.sessions[-1] if self.sessions else "loginwindow"
            self.save()
        return Reply(0, f"console: {self.console}\n")

    async def switch(self, name: str) -> Reply:
        return await self.login(name)

    async def logout(self, name: str) -> Reply:
        check_user_name(name)
        if name not in self.sessions:
            return Reply(1, "", f"{name} is not logged in\n")
        await self._end_session(self.users[name]["uid"])
        self.journal("logout", user=name, domain=f"gui/{self.users[name]['uid']}", result="logged out")
        self.save()
        return Reply(0, f"{name} logged out\n")

    async def _end_session(self, uid: int) -> None:
        """Every job of gui/<uid> stopped (SIGTERM, ExitTimeOut, SIGKILL) and unloaded; the console freed."""
        domain = f"gui/{uid}"
        await self._stop_all([j for j in self.jobs.values() if j.domain == domain])
        for target in [t for t, j in self.jobs.items() if j.domain == domain]:
            del self.jobs[target]
        name = self.uid_session(uid)
        if name is not None:
            self.sessions.remove(name)
            if self.console == name:
                self.console = "loginwindow"

    async def _load_agents(self, uid: int, *, start: bool = True) -> None:
        """What a login does: every Aqua LaunchAgent in /Library/LaunchAgents loaded in gui/<uid>."""
        for plist in sorted(self.paths.system("/Library/LaunchAgents").glob("*.plist")):
            await self._bootstrap(f"gui/{uid}", plist, quiet=True, start=start)

    # --- booting -----------------------------------------------------------------------------------

    async def boot(self) -> None:
        """Start from what is on disk: every LaunchDaemon, each session's agents (plists read afresh), and
        the jobs bootstrapped from elsewhere while the sandbox was down."""
        folders = ("/Library/LaunchDaemons/", "/Library/LaunchAgents/")
        self.jobs = {t: j for t, j in self.jobs.items() if not j.plist.startswith(folders)}
        for job in self.jobs.values():
            job.pid = None
        self.managed = True
        if self.console is None or (self.console not in self.sessions and self.console in self.users):
            self.console = self.sessions[-1] if self.sessions else "loginwindow"
        for plist in sorted(self.paths.system("/Library/LaunchDaemons").glob("*.plist")):
            await self._bootstrap("system", plist, quiet=True, start=False)
        for name in self.sessions:
            if name in self.users:
                await self._load_agents(self.users[name]["uid"], start=False)
        self.journal("boot", result="booted")
        self.save()
        for job in sorted(self.jobs.values(), key=lambda j: j.domain != "system"):
            if job.definition.get("RunAtLoad") is True and job.target not in self.disabled:
                self._start(job)

    async def halt(self) -> None:
        """Shutdown: SIGTERM every job, ExitTimeOut, SIGKILL; the state is kept for the next boot."""
        gui = [j for j in self.jobs.values() if j.domain != "system"]
        await self._stop_all(gui)
        await self._stop_all(list(self.jobs.values()))
        self.journal("shutdown", result="halted")
        self.save()

    # --- launchctl ---------------------------------------------------------------------------------

    async def launchctl(self, argv: list[str]) -> Reply:
        match argv:
            case ["bootstrap", domain, *plists] if plists:
                return await self._cmd_bootstrap(domain, plists)
            case ["bootout", target]:
                return await self._cmd_bootout(target)
            case ["bootout", domain, *plists] if plists:
                return await self._cmd_bootout_plists(domain, plists)
            case ["enable" | "disable" as verb, target]:
                return self._cmd_enable(target, verb == "enable")
            case ["kickstart", *rest] if rest and all(f in ("-k", "-p", "-s") for f in rest[:-1]):
                return await self._cmd_kickstart(rest[-1], set(rest[:-1]))
            case ["print", target]:
                return self._cmd_print(target)
            case [verb, *_] if verb in ("bootstrap", "bootout", "enable", "disable", "kickstart", "print"):
                return Reply(USAGE, "", f"Usage: launchctl {verb} {_USAGE[verb]}\n")
            case _:
                shown = " ".join(argv) or "(none)"
                return Reply(
                    USAGE, "", f"Unrecognized subcommand: {shown}\nUsage: launchctl <subcommand> ...\n"
                )

    async def _cmd_bootstrap(self, domain_text: str, plists: list[str]) -> Reply:
        domain = _parse_domain(domain_text)
        if domain is None:
            return Reply(USAGE, "", f"Unrecognized target specifier: {domain_text}\n")
        for text in plists:
            reply = await self._bootstrap(domain, Path(text))
            if reply.rc != 0:
                return reply
        return Reply()

    def _read_plist(self, path: Path) -> tuple[dict[str, Any] | None, Reply | None]:
        try:
            data = plistlib.loads(path.read_bytes())
        except FileNotFoundError:
            return None, Reply(2, "", f"Bootstrap failed: 2: No such file or directory ({path})\n")
        except (OSError, plistlib.InvalidFileException, ExpatError, ValueError):
            return None, Reply(INVALID_PLIST, "", f"{path}: Invalid property list\n")
        label = data.get("Label") if isinstance(data, dict) else None
        args = data.get("ProgramArguments") if isinstance(data, dict) else None
        program = data.get("Program") if isinstance(data, dict) else None
        has_program = (isinstance(args, list) and args and all(isinstance(a, str) for a in args)) or (
            isinstance(program, str) and program
        )
        if not isinstance(label, str) or not _LABEL.match(label) or not has_program:
            return None, Reply(INVALID_PLIST, "", f"{path}: Invalid property list\n")
        return data, None

    def _mac_path(self, path: Path) -> str:
        """The path as the simulated Mac sees it (what `launchctl print` shows as `path`)."""
        try:
            return "/" + path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path)

    async def _bootstrap(self, domain: str, path: Path, *, quiet: bool = False, start: bool = True) -> Reply:
        data, bad = self._read_plist(path)
        if data is None:
            assert bad is not None
            if not quiet:
                self.journal("bootstrap", domain=domain, plist=self._mac_path(path), result="invalid plist")
            return bad
        label = data["Label"]
        target = f"{domain}/{label}"
        types = _session_types(data)
        wrong_session = ("Aqua" in types) if domain == "system" else bool(types and "Aqua" not in types)
        if wrong_session and quiet:
            return Reply(IO_ERROR)
        fields: dict[str, object] = {"domain": domain, "label": label, "target": target}
        fields["plist"] = self._mac_path(path)
        if not self._gui_exists(domain):
            self.journal("bootstrap", **fields, result="no such domain")
            return Reply(
                NO_DOMAIN, "", f"Bootstrap failed: {NO_DOMAIN}: Domain does not support specified action\n"
            )
        if target in self.jobs or target in self.disabled or wrong_session:
            if not quiet:
                self.journal(
                    "bootstrap", **fields, result="already loaded" if target in self.jobs else "refused"
                )
            return Reply(IO_ERROR, "", f"Bootstrap failed: {IO_ERROR}: Input/output error\n")
        job = Job(domain, label, self._mac_path(path), data)
        self.jobs[target] = job
        self.journal("bootstrap", **fields, result="loaded")
        self.save()
        if start and self.live and data.get("RunAtLoad") is True:
            self._start(job)
        return Reply()

    async def _cmd_bootout(self, text: str) -> Reply:
        domain = _parse_domain(text)
        if domain is not None and domain != "system":
            uid = int(domain.partition("/")[2])
            had = self.uid_session(uid) is not None or any(j.domain == domain for j in self.jobs.values())
            await self._end_session(uid)
            self.journal("bootout", domain=domain, target=domain, result="unloaded" if had else "not loaded")
            self.save()
            return (
                Reply()
                if had
                else Reply(NOT_FOUND, "", f"Boot-out failed: {NOT_FOUND}: Could not find specified service\n")
            )
        split = _split_target(text)
        if split is None:
            return Reply(USAGE, "", f"Unrecognized target specifier: {text}\n")
        return await self._bootout(*split)

    async def _cmd_bootout_plists(self, domain_text: str, plists: list[str]) -> Reply:
        domain = _parse_domain(domain_text)
        if domain is None:
            return Reply(USAGE, "", f"Unrecognized target specifier: {domain_text}\n")
        for text in plists:
            data, bad = self._read_plist(Path(text))
            if data is None:
                assert bad is not None
                return bad
            reply = await self._bootout(domain, data["Label"])
            if reply.rc != 0:
                return reply
        return Reply()

    async def _bootout(self, domain: str, label: str) -> Reply:
        target = f"{domain}/{label}"
        job = self.jobs.get(target)
        if job is None:
            self.journal("bootout", domain=domain, label=label, target=target, result="not loaded")
            return Reply(NOT_FOUND, "", f"Boot-out failed: {NOT_FOUND}: Could not find specified service\n")
        await self._stop(job)
        self.jobs.pop(target, None)
        self.journal("bootout", domain=domain, label=label, target=target, result="unloaded")
        self.save()
        return Reply()

    def _cmd_enable(self, text: str, enable: bool) -> Reply:
        split = _split_target(text)
        if split is None:
            return Reply(USAGE, "", f"Unrecognized target specifier: {text}\n")
        target = "/".join(split)
        (self.disabled.discard if enable else self.disabled.add)(target)
        self.journal("enable" if enable else "disable", target=target, result="recorded")
        self.save()
        return Reply()

    async def _cmd_kickstart(self, text: str, flags: set[str]) -> Reply:
        split = _split_target(text)
        if split is None:
            return Reply(USAGE, "", f"Unrecognized target specifier: {text}\n")
        domain, label = split
        target = f"{domain}/{label}"
        restart = "-k" in flags
        job = self.jobs.get(target)
        if job is None:
            self.journal("kickstart", target=target, restart=restart, result="not loaded")
            return Reply(
                NOT_FOUND, "", f'Could not find service "{label}" in domain for {_domain_words(domain)}\n'
            )
        if restart and self._alive(job):
            await self._stop(job)
        if not self._alive(job):
            self._start(job, now=True)
            if not self.live:
                self.save()
        elif job.wake is not None:
            job.wake.set()
        self.journal("kickstart", target=target, restart=restart, result="started")
        if "-p" in flags:
            if self.live:
                await self._until_spawned(job)
            return Reply(0, f"{job.pid}\n" if job.pid else "")
        return Reply()

    async def _until_spawned(self, job: Job) -> None:
        for _ in range(100):
            if job.pid is not None or job.task is None:
                return
            await asyncio.sleep(0.01)

    def _cmd_print(self, text: str) -> Reply:
        domain = _parse_domain(text)
        if domain is not None:
            return self._print_domain(domain)
        split = _split_target(text)
        if split is None:
            return Reply(USAGE, "", f"Unrecognized target specifier: {text}\n")
        domain, label = split
        job = self.jobs.get(f"{domain}/{label}")
        if job is None:
            return Reply(
                NOT_FOUND,
                "",
                f'Bad request.\nCould not find service "{label}" in domain for {_domain_words(domain)}\n',
            )
        return Reply(0, self.print_job(job))

    def _print_domain(self, domain: str) -> Reply:
        if not self._gui_exists(domain):
            return Reply(NOT_FOUND, "", f"Bad request.\nCould not find domain for {domain}\n")
        lines = [
            f"{domain} = {{",
            "\ttype = " + ("System" if domain == "system" else "User"),
            "",
            "\tservices = {",
        ]
        for job in sorted((j for j in self.jobs.values() if j.domain == domain), key=lambda j: j.label):
            pid = str(job.pid) if self._alive(job) else "0"
            last = "-" if job.last_exit is None else str(job.last_exit)
            lines.append(f"\t\t{pid:>8} {last:>6} \t{job.label}")
        lines += ["\t}", "", "\tdisabled services = {"]
        for target in sorted(self.disabled):
            if target.startswith(domain + "/"):
                lines.append(f'\t\t"{target.removeprefix(domain + "/")}" => disabled')
        lines += ["\t}", "}"]
        return Reply(0, "\n".join(lines) + "\n")

    def print_job(self, job: Job) -> str:
        """`launchctl print` of one service, shaped like the recording
        tests/data/macos/launchctl-print-user-service-partial.txt."""
        alive = self._alive(job)
        argv = job.argv
        lines = [
            f"{job.target} = {{",
            f"\tactive count = {1 if alive else 0}",
            f"\tpath = {job.plist}",
            f"\ttype = {'LaunchDaemon' if job.domain == 'system' else 'LaunchAgent'}",
            f"\tstate = {'running' if alive else 'not running'}",
            "",
            f"\tprogram = {argv[0]}",
            "\targuments = {",
            *[f"\t\t{a}" for a in argv],
            "\t}",
            "",
        ]
        for key, words in (("StandardOutPath", "stdout path"), ("StandardErrorPath", "stderr path")):
            if isinstance(job.definition.get(key), str):
                lines.append(f"\t{words} = {job.definition[key]}")
        lines += ["\tdefault environment = {", f"\t\tPATH => {LAUNCHD_PATH}", "\t}", ""]
        env = job.definition.get("EnvironmentVariables")
        if isinstance(env, dict) and env:
            lines += ["\tenvironment = {", *[f"\t\t{k} => {v}" for k, v in sorted(env.items())], "\t}", ""]
        lines += [
            f"\tdomain = {job.domain}",
            f"\tminimum runtime = {job.throttle:g}",
            f"\texit timeout = {job.exit_timeout:g}",
            f"\truns = {job.runs}",
        ]
        if alive:
            lines.append(f"\tpid = {job.pid}")
        if job.last_signal is not None:
            lines.append(f"\tlast terminating signal = {_signal_words(job.last_signal)}")
        else:
            last = "(never exited)" if job.last_exit is None else str(job.last_exit)
            lines.append(f"\tlast exit code = {last}")
        lines.append("}")
        return "\n".join(lines) + "\n"

    # --- ps ----------------------------------------------------------------------------------------

    def ps(self) -> dict[str, Any]:
        jobs = [
            {
                "domain": j.domain,
                "label": j.label,
                "pid": j.pid if self._alive(j) else None,
                "state": "running" if self._alive(j) else "not running",
                "last_exit": j.last_exit,
                "last_signal": j.last_signal,
                "runs": j.runs,
            }
            for j in sorted(self.jobs.values(), key=lambda j: (j.domain != "system", j.domain, j.label))
        ]
        return {"console": self.console, "sessions": self.sessions, "users": self.users, "jobs": jobs}

    # --- processes ---------------------------------------------------------------------------------

    def _alive(self, job: Job) -> bool:
        if job.pid is None:
            return False
        if self.live:
            return True
        return pid_alive(job.pid)

    def _start(self, job: Job, *, now: bool = False) -> None:
        """Booted: a supervising task. Not booted: the process, detached, its pid recorded."""
        if not self.live:
            proc = self._popen(job)
            job.pid, job.runs = proc.pid, job.runs + 1
            self.journal("spawn", target=job.target, pid=proc.pid, argv=job.argv)
            return
        if job.task is not None and not job.task.done():
            if now and job.wake is not None:  # waiting out its throttle: kickstart starts it at once
                job.started_at = 0.0
                job.wake.set()
            return
        job.stopping = False
        job.wake = asyncio.Event()
        if now:
            job.started_at = 0.0
        job.task = asyncio.get_running_loop().create_task(self._supervise(job), name=job.target)

    async def _supervise(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        assert job.wake is not None
        while not job.stopping:
            delay = job.throttle - (loop.time() - job.started_at) if job.started_at else 0.0
            if delay > 0:
                job.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(job.wake.wait(), delay)
                if job.stopping:
                    break
            job.started_at = loop.time()
            try:
                proc = await self._spawn(job)
            except OSError as exc:
                job.last_exit, job.last_signal = 78, None  # EX_CONFIG, as launchd reports a spawn failure
                self.journal("spawn", target=job.target, argv=job.argv, result=f"failed: {exc}")
                self.save()
                if not job.restarts_after(78):
                    break
                continue
            job.pid, job.runs = proc.pid, job.runs + 1
            self.journal("spawn", target=job.target, pid=proc.pid, argv=job.argv)
            self.save()
            rc = await proc.wait()
            _signal_group(proc.pid, signal.SIGKILL)  # what the job left behind in its group goes with it
            job.pid = None
            job.last_exit, job.last_signal = (None, -rc) if rc < 0 else (rc, None)
            self.journal("exit", target=job.target, status=rc)
            self.save()
            if job.stopping or not job.restarts_after(rc):
                break
        job.task = None

    async def _spawn(self, job: Job) -> asyncio.subprocess.Process:
        argv, kwargs = self._launch(job)
        try:
            return await asyncio.create_subprocess_exec(*argv, **kwargs)
        finally:
            for key in ("stdout", "stderr"):
                if hasattr(kwargs[key], "close"):
                    kwargs[key].close()

    def _popen(self, job: Job) -> subprocess.Popen[bytes]:
        argv, kwargs = self._launch(job)
        try:
            return subprocess.Popen(argv, **kwargs)
        finally:
            for key in ("stdout", "stderr"):
                if hasattr(kwargs[key], "close"):
                    kwargs[key].close()

    def _launch(self, job: Job) -> tuple[list[str], dict[str, Any]]:
        """argv and Popen arguments: its own session and group, the domain's user when we are root."""
        d = job.definition
        env = {"PATH": LAUNCHD_PATH, "XPC_SERVICE_NAME": job.label}
        kwargs: dict[str, Any] = {"stdin": subprocess.DEVNULL, "start_new_session": True, "close_fds": True}
        if job.domain != "system":
            uid = int(job.domain.partition("/")[2])
            name = self.uid_session(uid) or next((n for n, u in self.users.items() if u["uid"] == uid), None)
            gid = self.users[name]["gid"] if name else STAFF_GID
            if name:
                env |= {"HOME": str(self.home(name)), "USER": name, "LOGNAME": name}
            if os.geteuid() == 0 and uid != 0:
                kwargs |= {"user": uid, "group": gid, "extra_groups": []}
        else:
            env |= {"HOME": str(self.paths.system("/var/root")), "USER": "root", "LOGNAME": "root"}
        if isinstance(d.get("EnvironmentVariables"), dict):
            env |= {str(k): str(v) for k, v in d["EnvironmentVariables"].items()}
        kwargs["env"] = env
        cwd = d.get("WorkingDirectory")
        kwargs["cwd"] = (
            str(self.paths.system(cwd)) if isinstance(cwd, str) and cwd.startswith("/") else str(self.root)
        )
        for key, stream in (("StandardOutPath", "stdout"), ("StandardErrorPath", "stderr")):
            value = d.get(key)
            if isinstance(value, str) and value.startswith("/"):
                path = self.paths.system(value)
                path.parent.mkdir(parents=True, exist_ok=True)
                kwargs[stream] = open(path, "ab")  # noqa: SIM115  (closed once the child has it)
            else:
                kwargs[stream] = subprocess.DEVNULL
        return self.program(job.argv), kwargs

    def program(self, argv: list[str]) -> list[str]:
        """A Mac path found under the root runs from there; our launcher runs this Python's bootstrapper."""
        first, rest = argv[0], argv[1:]
        if first.startswith("/"):
            inside = self.paths.system(first)
            if inside.is_file():
                return [str(inside), *rest]
            if PurePosixPath(first) == LAUNCHER:
                return launcher_argv(self.root, rest)
        return [first, *rest]

    async def _stop(self, job: Job) -> None:
        """SIGTERM to the job's group, ExitTimeOut to go, then SIGKILL; no restart follows."""
        if self.live:
            task = job.task
            job.stopping = True
            if job.wake is not None:
                job.wake.set()
            if job.pid is not None:
                _signal_group(job.pid, signal.SIGTERM)
            if task is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(task), job.exit_timeout)
                except TimeoutError:
                    if job.pid is not None:
                        _signal_group(job.pid, signal.SIGKILL)
                    await task
            job.stopping = False
            return
        if job.pid is not None and pid_alive(job.pid):
            _signal_group(job.pid, signal.SIGTERM)
            if not await asyncio.to_thread(_wait_gone, job.pid, job.exit_timeout):
                _signal_group(job.pid, signal.SIGKILL)
                await asyncio.to_thread(_wait_gone, job.pid, 5.0)
        job.pid = None

    async def _stop_all(self, jobs: list[Job]) -> None:
        await asyncio.gather(*(self._stop(j) for j in jobs))


_USAGE = {
    "bootstrap": "<domain-target> [service-path, service-path2, ...]",
    "bootout": "<domain-target> [service-path1, service-path2, ...] | <service-target>",
    "enable": "<service-target>",
    "disable": "<service-target>",
    "kickstart": "[-k] [-p] <service-target>",
    "print": "<domain-target> | <service-target>",
}


def runtime_file(root: Path) -> Path:
    """Where `sandbox install --runtime` records the Python our launcher runs (outside the simulated
    system, beside the launchctl shim: it is the simulation's wiring, not a file of the Mac)."""
    return root / ".sandbox" / "runtime"


def runtime(root: Path) -> str:
    """The Python the sandbox's launcher runs: the one `sandbox install --runtime` chose, else this one."""
    try:
        chosen = runtime_file(root).read_text(encoding="utf-8").strip()
    except OSError:
        return sys.executable
    return chosen or sys.executable


def launcher_argv(root: Path, args: list[str]) -> list[str]:
    """Our launcher, `/Library/bootstrapper/bin/bootstrapper daemon|agent`, for the sandbox at `root`."""
    head, rest = (args[0], args[1:]) if args else ("", [])
    python = [runtime(root), "-m", "bootstrapper"]
    if head == "agent":
        return [*python, "agent", "--sandbox", str(root), *rest]
    if head == "daemon":
        return [*python, "run", "--sandbox", str(root), *rest]
    return [*python, *args]


def _signal_words(sig: int) -> str:
    try:
        name = signal.Signals(sig).name
    except ValueError:
        return str(sig)
    words = {"SIGTERM": "Terminated", "SIGKILL": "Killed", "SIGINT": "Interrupt", "SIGHUP": "Hangup"}
    return f"{words.get(name, name)}: {sig}"


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _wait_gone(pid: int, seconds: float) -> bool:
    """Poll for the end of a process we did not start (an unbooted job's); True when it ended in time."""
    until = time.monotonic() + seconds
    while pid_alive(pid):
        if time.monotonic() >= until:
            return False
        time.sleep(0.02)
    return True


def append_journal(paths: Paths, op: str, **fields: object) -> None:
    """One line per launchd operation in the journal that `SandboxPlatform.journal()` reads; one
    `write` to a file opened for appending, so lines from the sandbox's launchd and from the platform
    do not interleave."""
    entry = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"), "op": op, **fields}
    file = paths.launchd_journal
    file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie of ours is reaped and counts as gone."""
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


@contextlib.contextmanager
def state_lock(root: Path, *, blocking: bool) -> Iterator[bool]:
    """The lock a booted launchd holds for its life, and an unbooted `launchctl` for one call."""
    folder = state_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "state.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
