"""The sandbox's launchd and launchctl, with real processes: exit codes and output against the recordings
in tests/data/macos/, job policies (KeepAlive, ThrottleInterval, ExitTimeOut), login sessions, reboot,
and the argv the sandbox platform sends compared with the Mac's."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import plistlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrapper import process
from bootstrapper.cli import main as cli
from bootstrapper.paths import Paths
from bootstrapper.platform.base import ConsoleUser
from bootstrapper.platform.launchctl import parse_launchctl_print
from bootstrapper.platform.macos import MacOSPlatform
from bootstrapper.platform.sandbox import SandboxPlatform
from bootstrapper.platform.sandbox.control import request
from bootstrapper.platform.sandbox.launchctl import SHIM
from bootstrapper.platform.sandbox.launchd import pid_alive, read_state, socket_path
from tests.support.fake_macos import FakeMac, recording

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="running a job as uid 501 needs root")


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def job(folder: Path, label: str, argv: list[str], **keys: Any) -> Path:
    """A plist in `folder` (a Mac path under the root), with short timings unless told otherwise."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{label}.plist"
    definition = {"Label": label, "ProgramArguments": argv, "ThrottleInterval": 1, "ExitTimeOut": 1, **keys}
    path.write_bytes(plistlib.dumps(definition))
    return path


def launchctl(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The shim, as a program: what the sandbox platform and the package scripts run."""
    return subprocess.run([str(root / SHIM), *args], capture_output=True, text=True, timeout=60, check=False)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    until = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < until, f"timed out waiting for {what}"
        time.sleep(0.05)


def ps(root: Path) -> dict[str, Any]:
    reply = request(root, {"op": "ps"})
    assert reply.rc == 0, reply.err
    data: dict[str, Any] = json.loads(reply.out)
    return data


def pid_of(root: Path, target: str) -> int | None:
    for j in ps(root)["jobs"]:
        if f"{j['domain']}/{j['label']}" == target:
            return j["pid"]  # type: ignore[no-any-return]
    return None


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "box"
    folder.mkdir()
    SandboxPlatform(Paths(root=folder)).launchd  # writes the shim  # noqa: B018
    return folder


class Booted:
    """`bootstrapper sandbox boot ROOT` as a real process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-m", "bootstrapper", "sandbox", "boot", str(self.root)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait_for(lambda: socket_path(self.root).exists(), "the sandbox to boot")

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture
def booted(root: Path) -> Iterator[Booted]:
    box = Booted(root)
    yield box
    if box.proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            box.stop()
    for j in read_state(root)["jobs"].values():  # nothing outlives a test
        if j.get("pid"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(j["pid"], signal.SIGKILL)


# --- exit codes and output, as recorded on Macs -----------------------------------------------------


def test_bootstrap_twice_is_5_and_bootout_twice_is_113(root: Path) -> None:
    plist = job(root / "Library/LaunchDaemons", "org.example.d", ["/bin/sleep", "30"])
    assert launchctl(root, "bootstrap", "system", str(plist)).returncode == 0
    again = launchctl(root, "bootstrap", "system", str(plist))
    assert (again.returncode, again.stderr) == (5, "Bootstrap failed: 5: Input/output error\n")
    assert launchctl(root, "bootout", "system/org.example.d").returncode == 0
    gone = launchctl(root, "bootout", "system/org.example.d")
    assert (gone.returncode, gone.stderr) == (113, "Boot-out failed: 113: Could not find specified service\n")
    # bootout DOMAIN PLIST names the service by the plist's Label.
    assert launchctl(root, "bootstrap", "system", str(plist)).returncode == 0
    assert launchctl(root, "bootout", "system", str(plist)).returncode == 0
    assert launchctl(root, "print", "system/org.example.d").returncode == 113


def test_invalid_plist_is_133_as_recorded(root: Path) -> None:
    bad = root / "Library/LaunchDaemons/homebrew.mxcl.ntp.plist"
    bad.parent.mkdir(parents=True)
    bad.write_text("<plist><dict><key>Label</key>")
    result = launchctl(root, "bootstrap", "system", str(bad))
    recorded = recording("launchctl-bootstrap-invalid-plist-133.txt").splitlines()
    assert recorded[-1] == str(result.returncode) == "133"
    assert result.stderr.replace(str(root), "") == recorded[-3] + "\n"


def test_print_and_kickstart_of_a_missing_service_are_113_as_recorded(root: Path) -> None:
    printed = launchctl(root, "print", "gui/501/software.toss.agent-runtime")
    assert (printed.returncode, printed.stdout) == (113, "")
    assert printed.stderr == recording("launchctl-print-gui-not-found-113.txt")
    kicked = launchctl(root, "kickstart", "-k", "system/com.openclaw.novnc")
    assert kicked.returncode == 113
    assert kicked.stderr == recording("launchctl-kickstart-system-not-found.txt").rstrip() + "\n"
    gui = launchctl(root, "kickstart", "gui/501/ai.hermes.gateway")
    assert gui.stderr == recording("launchctl-kickstart-gui-not-found-113.txt").splitlines()[0] + "\n"


def test_print_parses_with_the_macos_parser(root: Path) -> None:
    plist = job(
        root / "Library/LaunchDaemons", "org.example.d", ["/bin/sleep", "30"], EnvironmentVariables={"A": "b"}
    )
    assert launchctl(root, "bootstrap", "system", str(plist)).returncode == 0
    result = launchctl(root, "print", "system/org.example.d")
    assert result.returncode == 0
    info = parse_launchctl_print(result.stdout, "system/org.example.d")
    assert info.state == "not running" and info.pid is None
    assert info.path == "/Library/LaunchDaemons/org.example.d.plist"
    assert info.properties["exit timeout"] == "1" and info.properties["domain"] == "system"


def test_a_disabled_service_does_not_bootstrap_until_enabled(root: Path) -> None:
    plist = job(root / "Library/LaunchDaemons", "org.example.d", ["/bin/sleep", "30"])
    assert launchctl(root, "disable", "system/org.example.d").returncode == 0
    assert launchctl(root, "bootstrap", "system", str(plist)).returncode == 5
    assert launchctl(root, "enable", "system/org.example.d").returncode == 0
    assert launchctl(root, "bootstrap", "system", str(plist)).returncode == 0


def test_unknown_subcommands_and_bad_targets_are_usage_errors(root: Path) -> None:
    assert launchctl(root, "frobnicate").returncode == 64
    assert launchctl(root, "print", "nowhere/x").returncode == 64
    assert launchctl(root, "bootstrap").returncode == 64


def test_asuser_runs_the_command(root: Path) -> None:
    result = launchctl(root, "asuser", "501", "/bin/sh", "-c", "echo hi; exit 7")
    assert (result.returncode, result.stdout) == (7, "hi\n")


# --- the argv, side by side ---------------------------------------------------------------------------


def test_the_sandbox_sends_the_macs_launchctl_argv(
    mac: MacOSPlatform, fake: FakeMac, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[list[str]] = []
    real = process.run

    async def recording_run(argv: Any, **kwargs: Any) -> process.Completed:
        if Path(str(argv[0])).name == "launchctl":
            sent.append([str(a) for a in argv])
        return await real(argv, **kwargs)

    monkeypatch.setattr(process, "run", recording_run)
    box = SandboxPlatform(Paths(root=root))
    argvs = []
    for platform in (mac, box):
        sent.clear()
        plist = job(
            platform.paths.system("/Library/LaunchAgents"), platform.paths.agent_label, ["/bin/sleep", "30"]
        )
        user = ConsoleUser("erikberglund", 501, 20, platform.paths.system("/Users/erikberglund"))

        async def calls(p: Any = platform, plist: Path = plist, user: ConsoleUser = user) -> None:
            await p.bootstrap("gui/501", plist)
            await p.service("gui/501", p.paths.agent_label)
            await p.kickstart("gui/501", p.paths.agent_label, restart=True)
            await p.bootout("gui/501", p.paths.agent_label)
            await p.bootout("gui/501", p.paths.agent_label)
            await p.start_agent(user)
            await p.logout(user)

        run(calls())
        argvs.append([a[1:] for a in sent])
        assert {a[0] for a in sent} == {platform.launchd.launchctl}
    mac_argv, sandbox_argv = argvs
    # The plist path differs by the root; everything else is the same argv.
    assert [[a.replace(str(root), "") for a in argv] for argv in sandbox_argv] == [
        [a.replace(str(mac.paths.root), "") for a in argv] for argv in mac_argv
    ]
    assert ["kickstart", "-k", "gui/501/org.bootstrapper.agent"] in sandbox_argv
    assert sandbox_argv[-1] == ["bootout", "gui/501"]


# --- jobs, booted --------------------------------------------------------------------------------------


def test_kickstart_k_kills_and_restarts(root: Path, booted: Booted) -> None:
    job(root / "Library/LaunchDaemons", "org.example.sleeper", ["/bin/sleep", "60"], RunAtLoad=True)
    booted.start()
    first = wait_for(lambda: pid_of(root, "system/org.example.sleeper"), "the job to start")
    plain = launchctl(root, "kickstart", "system/org.example.sleeper")
    assert plain.returncode == 0 and pid_of(root, "system/org.example.sleeper") == first, (
        "running: left alone"
    )
    result = launchctl(root, "kickstart", "-k", "-p", "system/org.example.sleeper")
    assert result.returncode == 0
    second = int(result.stdout)
    assert second != first and not pid_alive(first)
    assert os.getpgid(second) == second, "each job leads its own process group"
    info = parse_launchctl_print(launchctl(root, "print", "system/org.example.sleeper").stdout, "")
    assert info.pid == second and info.state == "running" and info.properties["runs"] == "2"


def test_keepalive_successful_exit_false_restarts_failures_after_the_throttle(
    root: Path, booted: Booted
) -> None:
    runs, once = root / "runs", root / "once"
    daemons = root / "Library/LaunchDaemons"
    failing = f"date +%s.%N >> {runs}; exit 3"
    job(
        daemons,
        "org.example.failing",
        ["/bin/sh", "-c", failing],
        RunAtLoad=True,
        KeepAlive={"SuccessfulExit": False},
    )
    job(
        daemons,
        "org.example.done",
        ["/bin/sh", "-c", f"echo x >> {once}"],
        RunAtLoad=True,
        KeepAlive={"SuccessfulExit": False},
    )
    booted.start()
    wait_for(lambda: runs.exists() and len(runs.read_text().split()) >= 3, "three runs", timeout=20)
    starts = [float(t) for t in runs.read_text().split()]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.9, f"restarts came faster than ThrottleInterval 1: {gaps}"
    assert once.read_text() == "x\n", "an exit 0 is not restarted under SuccessfulExit false"
    failing_job = next(j for j in ps(root)["jobs"] if j["label"] == "org.example.failing")
    assert failing_job["last_exit"] == 3


def test_bootout_sigterm_then_sigkill_after_exit_timeout(root: Path, booted: Booted) -> None:
    pidfile = root / "stubborn.pid"
    code = (
        "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    )
    job(
        root / "Library/LaunchDaemons",
        "org.example.stubborn",
        [sys.executable, "-c", code],
        RunAtLoad=True,
        ExitTimeOut=2,
    )
    booted.start()
    pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text(), "the job to start"))
    started = time.monotonic()
    assert launchctl(root, "bootout", "system/org.example.stubborn").returncode == 0
    took = time.monotonic() - started
    assert not pid_alive(pid)
    assert 2.0 <= took < 10.0, (
        f"SIGTERM ignored: SIGKILL should follow after ExitTimeOut 2 s, took {took:.1f} s"
    )
    exits = [e for e in SandboxPlatform(Paths(root=root)).journal() if e["op"] == "exit"]
    assert exits[-1]["status"] == -signal.SIGKILL


def test_reboot_restarts_run_at_load_jobs(root: Path, booted: Booted) -> None:
    job(root / "Library/LaunchDaemons", "org.example.sleeper", ["/bin/sleep", "60"], RunAtLoad=True)
    booted.start()
    first = wait_for(lambda: pid_of(root, "system/org.example.sleeper"), "the job to start")
    assert request(root, {"op": "reboot"}).rc == 0
    second = wait_for(
        lambda: (p := pid_of(root, "system/org.example.sleeper")) not in (None, first) and p,
        "the job after reboot",
    )
    assert not pid_alive(first) and pid_alive(second)
    assert request(root, {"op": "shutdown"}).rc == 0
    assert booted.stop() == 0
    assert not pid_alive(second)


# --- login sessions ------------------------------------------------------------------------------------


def agent_plist(root: Path, label: str = "org.example.agent") -> Path:
    return job(
        root / "Library/LaunchAgents",
        label,
        ["/bin/sleep", "60"],
        RunAtLoad=True,
        LimitLoadToSessionType="Aqua",
    )


def _runs_as(uid: int, gid: int) -> tuple[int, int]:
    return (uid, gid) if os.geteuid() == 0 else (os.getuid(), os.getgid())


def test_logout_ends_the_sessions_jobs(root: Path, booted: Booted) -> None:
    agent_plist(root)
    booted.start()
    assert request(root, {"op": "login", "user": "alice"}).rc == 0
    pid = wait_for(lambda: pid_of(root, "gui/501/org.example.agent"), "alice's agent")
    box = SandboxPlatform(Paths(root=root))
    user = run(box.console_user())
    # The uid alice's processes really run as: her own as root, otherwise the caller's.
    assert user == ConsoleUser("alice", *_runs_as(501, 20), root / "Users/alice")
    run(box.logout(user))
    assert not pid_alive(pid)
    assert pid_of(root, "gui/501/org.example.agent") is None
    assert ps(root)["console"] == "loginwindow" and run(box.console_user()) is None


def test_fast_user_switching_keeps_the_other_session(root: Path, booted: Booted) -> None:
    agent_plist(root)
    booted.start()
    request(root, {"op": "login", "user": "alice"})
    request(root, {"op": "switch", "user": "bob"})
    alice = wait_for(lambda: pid_of(root, "gui/501/org.example.agent"), "alice's agent")
    bob = wait_for(lambda: pid_of(root, "gui/502/org.example.agent"), "bob's agent")
    box = SandboxPlatform(Paths(root=root))
    console = run(box.console_user())
    assert console is not None and (console.name, console.uid) == ("bob", _runs_as(502, 20)[0])
    assert request(root, {"op": "logout", "user": "bob"}).rc == 0
    assert not pid_alive(bob) and pid_alive(alice)


def test_a_login_before_boot_starts_the_agents_at_boot(root: Path, booted: Booted) -> None:
    agent_plist(root)
    job(root / "Library/LaunchDaemons", "org.example.d", ["/bin/sleep", "60"], RunAtLoad=True)
    assert request(root, {"op": "login", "user": "alice"}).rc == 0
    booted.start()
    wait_for(lambda: pid_of(root, "gui/501/org.example.agent"), "alice's agent")
    wait_for(lambda: pid_of(root, "system/org.example.d"), "the daemon")


@ROOT_ONLY
def test_as_root_a_users_agent_runs_under_their_uid(root: Path, booted: Booted) -> None:
    agent_plist(root)
    booted.start()
    request(root, {"op": "login", "user": "alice"})
    pid = wait_for(lambda: pid_of(root, "gui/501/org.example.agent"), "alice's agent")
    status = Path(f"/proc/{pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == ["501"] * 4
    home = root / "Users/alice"
    assert (home.stat().st_uid, home.stat().st_gid) == (501, 20)


def test_user_names_are_checked(root: Path) -> None:
    reply = request(root, {"op": "login", "user": "root"})
    assert reply.rc == 2 and "not usable" in reply.err


# --- the command line ----------------------------------------------------------------------------------


def test_sandbox_ps_json(root: Path, booted: Booted, capsys: pytest.CaptureFixture[str]) -> None:
    job(root / "Library/LaunchDaemons", "org.example.sleeper", ["/bin/sleep", "60"], RunAtLoad=True)
    booted.start()
    pid = wait_for(lambda: pid_of(root, "system/org.example.sleeper"), "the job to start")
    capsys.readouterr()
    assert cli(["sandbox", "ps", str(root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["console"] == "loginwindow"
    assert data["jobs"] == [
        {
            "domain": "system",
            "label": "org.example.sleeper",
            "pid": pid,
            "state": "running",
            "last_exit": None,
            "last_signal": None,
            "runs": 1,
        }
    ]


def test_sandbox_install_bootstraps_the_daemon_with_the_manifest_in_managed_prefs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "new"
    assert cli(["sandbox", "install", str(folder), "--manifest", "https://example.com/m.yaml"]) == 0
    paths = Paths(root=folder)
    assert plistlib.loads(paths.managed_prefs.read_bytes()) == {"manifest_url": "https://example.com/m.yaml"}
    state = read_state(folder)
    assert set(state["jobs"]) == {"system/org.bootstrapper.daemon"} and state["console"] == "loginwindow"
    ops = [(e["op"], e.get("target"), e.get("result")) for e in SandboxPlatform(paths).journal()]
    assert ops == [
        ("bootout", "system/org.bootstrapper.daemon", "not loaded"),
        ("enable", "system/org.bootstrapper.daemon", "recorded"),
        ("bootstrap", "system/org.bootstrapper.daemon", "loaded"),
    ]
    assert cli(["sandbox", "install", str(folder), "--manifest", "http://example.com/m.yaml"]) == 2
    assert "needs --allow-http" in capsys.readouterr().err


def test_commands_on_a_missing_sandbox_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["sandbox", "login", str(tmp_path / "nope"), "alice"]) == 2
    assert "no sandbox at" in capsys.readouterr().err


def test_reboot_of_a_sandbox_that_is_not_booted_says_so(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["sandbox", "reboot", str(root)]) == 1
    assert "is not booted" in capsys.readouterr().err
