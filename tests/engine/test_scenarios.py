"""The lifecycle an admin meets, on a booted simulated Mac: each scenario is a real process tree that
the sandbox's launchd starts from the plists `bootstrapper sandbox install` really installs.

The tests drive it as an admin would (`sandbox install`, `boot`, `login`, `logout`, `reboot`) and look
only from outside: `sandbox ps`, the launchd journal, the result file, the files scripts leave, /proc.
As root (CI), user agents run as uid 501 from a runtime every uid can run, as on a Mac; otherwise
everything runs as the caller.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bootstrapper.cli import main as cli
from bootstrapper.paths import PACKAGE_ID
from tests.support import runtime as runtime_builder
from tests.support.booted import Mac, booted_mac
from tests.support.httpfault import Exchange, FaultServer
from tests.support.site import Site

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="looks for processes in /proc"),
]

DAEMON = "system/org.bootstrapper.daemon"
AS_ROOT = os.geteuid() == 0
#: alice's uid inside the sandbox, and the uid her processes really get (the caller's without root).
ALICE = 501
ALICE_RUNS_AS = ALICE if AS_ROOT else os.getuid()


def agent(uid: int = ALICE) -> str:
    return f"gui/{uid}/org.bootstrapper.agent"


@pytest.fixture(scope="session")
def runtime() -> Iterator[str]:
    """The Python the sandbox's launcher runs. As root it is a world-readable copy (what a Mac
    installs under /Library), since this interpreter may sit where uid 501 cannot run it."""
    if not AS_ROOT:
        yield sys.executable
        return
    folder = Path(tempfile.mkdtemp(prefix="bootstrapper-runtime-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        yield str(runtime_builder.build(folder / "python"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def mac(runtime: str) -> Iterator[Mac]:
    with booted_mac(runtime) as box:
        yield box


def home(mac: Mac) -> Path:
    """alice's home as her agent knows it: `Users/alice`, or the caller's name without root."""
    if AS_ROOT:
        return mac.root / "Users/alice"
    import pwd

    return mac.root / "Users" / pwd.getpwuid(os.getuid()).pw_name


def nothing_of_ours_is_left(mac: Mac, timeout: float = 30.0) -> None:
    mac.wait_for(lambda: not mac.ps()["jobs"], "self-removal to boot out every job", timeout=timeout)
    mac.wait_for(lambda: not mac.processes(), "every process of ours to end", timeout=15)
    paths = mac.paths
    for path in (paths.launch_daemon_plist, paths.launch_agent_plist, paths.install_dir, paths.run_dir):
        assert not path.exists(), f"{path} outlived self-removal"
    assert not (paths.receipts_dir / f"{PACKAGE_ID}.plist").exists(), "our receipt outlived self-removal"


# --- 1. the whole deployment path --------------------------------------------------------------------


def test_the_deployment_path_from_install_to_self_removal_leaves_nothing_of_ours(
    mac: Mac, site: Site
) -> None:
    url = site.manifest(
        {
            "setupassistant": [
                {
                    "name": "root step",
                    "type": "rootscript",
                    **site.script("root.sh", 'id -u > "$BOOTSTRAPPER_ROOT/root-step"'),
                }
            ],
            "userland": [
                {
                    "name": "user step",
                    "type": "userscript",
                    **site.script("user.sh", 'echo "$(id -u) $HOME" > "$HOME/user-step"'),
                }
            ],
        }
    )
    mac.install(url)
    mac.boot()
    root_step = mac.root / "root-step"
    ran_as = mac.wait_for(
        lambda: root_step.exists() and root_step.read_text(), "the root step, before a login"
    )
    assert ran_as == f"{os.getuid()}\n"
    assert mac.job(agent()) is None, "no agent before a login"
    mac.sandbox("login", "alice")
    done = home(mac) / "user-step"
    mac.wait_for(done.exists, "alice's user step")
    assert done.read_text() == f"{ALICE_RUNS_AS} {home(mac)}\n"
    nothing_of_ours_is_left(mac)
    result = mac.result()
    assert result["result"] == "success", result
    assert [s["status"] for s in result["steps"]] == ["done", "done"]
    # launchd started the agent at the login (once), and self-removal booted it out, daemon last.
    assert mac.spawns(agent()) == 1
    bootouts = [(e.get("target"), e.get("result")) for e in mac.journal() if e["op"] == "bootout"]
    assert (agent(), "unloaded") in bootouts and bootouts[-1] == (DAEMON, "unloaded"), bootouts
    # The SIGTERM of its own bootout is the expected end: exit 0, not "interrupted" (130).
    mac.wait_for(
        lambda: [e for e in mac.journal() if e["op"] == "exit" and e.get("target") == DAEMON],
        "the daemon's exit",
    )
    daemon_exits = [e["status"] for e in mac.journal() if e["op"] == "exit" and e.get("target") == DAEMON]
    assert daemon_exits == [0], daemon_exits
    # What an admin sees: no job of ours.
    shown = subprocess.run(
        [sys.executable, "-m", "bootstrapper", "sandbox", "ps", str(mac.root), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(shown.stdout)["jobs"] == []


def test_sandbox_install_refuses_a_runtime_that_cannot_run_bootstrapper(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "mac"
    base = ["sandbox", "install", str(folder), "--manifest", "https://example.com/m.yaml"]
    assert cli([*base, "--runtime", str(tmp_path / "nope")]) == 2
    assert "--runtime" in capsys.readouterr().err
    bare = tmp_path / "python3"  # a Python without bootstrapper: the import fails
    bare.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'bootstrapper'\" >&2; exit 1\n")
    bare.chmod(0o755)
    assert cli([*base, "--runtime", str(bare)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot import bootstrapper" in err, err
    assert not (folder / ".sandbox/runtime").exists()


# --- 2. reboot mid-download and mid-script ----------------------------------------------------------

#: First run: records its pid (its group's id) and waits, with a child, for a long time. A later run
#: says "twin" when the first copy still runs beside it, then finishes at once.
_TWIN_SCRIPT = """
out={folder}/pids
if [ -s "$out" ]; then
  old=$(head -n 1 "$out")
  if [ -e /proc/$old ] && ! grep -q '^State:.*Z' /proc/$old/status; then echo twin >> {folder}/twins; fi
  echo $$ >> "$out"
  echo ran > {folder}/ran
  exit 0
fi
echo $$ >> "$out"
sleep 60 &
wait
"""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def test_a_reboot_mid_script_and_mid_download_runs_the_script_again_alone_and_resumes_the_download(
    mac: Mac,
) -> None:
    big = os.urandom(3 << 20)
    script = _TWIN_SCRIPT.format(folder="$BOOTSTRAPPER_ROOT").encode()

    def big_file(ex: Exchange) -> None:
        """The first answer sends 2 MiB (more than the downloader buffers), then stalls until the
        reboot cuts it; a later one serves what is asked, Range and If-Range honoured."""
        if ex.index > 0:
            ex.serve(big)
            return

        def body() -> Iterator[bytes]:
            yield big[: 2 << 20]
            for _ in range(600):
                time.sleep(0.1)
                yield b""

        headers = {"Accept-Ranges": "bytes", "ETag": '"v1"'}
        ex.reply(200, body(), headers, content_length=len(big))

    with FaultServer(host="127.0.0.1") as server:
        server.add("/big.bin", big_file)
        server.add("/long.sh", lambda ex: ex.serve(b"#!/bin/sh\n" + script))
        doc = {
            "format": 1,
            "settings": {"allow_http": True, "retries": 0, "retrywait": 0},
            "setupassistant": [
                {
                    "name": "long",
                    "type": "rootscript",
                    "url": server.url("/long.sh"),
                    "hash": hashlib.sha256(b"#!/bin/sh\n" + script).hexdigest(),
                },
                {
                    "name": "big",
                    "type": "rootfile",
                    "file": "/Library/Example/big.bin",
                    "url": server.url("/big.bin"),
                    "hash": hashlib.sha256(big).hexdigest(),
                },
            ],
        }
        manifest = yaml.safe_dump(doc, sort_keys=False).encode()
        server.add("/m.yaml", lambda ex: ex.serve(manifest))
        mac.install(server.url("/m.yaml"))
        mac.boot()
        pids = mac.root / "pids"
        first = int(mac.wait_for(lambda: pids.exists() and pids.read_text().split()[:1], "the script")[0])
        staging = mac.paths.staging_dir
        mac.wait_for(
            lambda: any(p.stat().st_size for p in staging.glob("*.part")), "the download to be under way"
        )
        daemon = mac.pid(DAEMON)
        mac.sandbox("reboot")
        mac.wait_for(
            lambda: (p := mac.pid(DAEMON)) is not None and p != daemon, "the daemon after the reboot"
        )
        assert not _alive(first), "the script's first copy outlived the reboot"
        mac.wait_for(lambda: not mac.ps()["jobs"], "the run to finish and remove bootstrapper", timeout=60)
        requests = server.requests("/big.bin")
    result = mac.result()
    assert result["result"] == "success", result
    # At least once, never twice at a time: the script ran again after the boot, alone.
    assert len(pids.read_text().split()) == 2 and (mac.root / "ran").exists()
    assert not (mac.root / "twins").exists(), "the script ran beside its first copy"
    # The download went on from where it stopped instead of starting over.
    assert (mac.root / "Library/Example/big.bin").read_bytes() == big
    resumed = [r.headers.get("range", "") for r in requests[1:]]
    assert resumed and all(r.startswith("bytes=") and not r.startswith("bytes=0-") for r in resumed), resumed
    assert not mac.processes()


# --- 3. logout mid-user-script, and the next login ----------------------------------------------------


def test_a_user_script_cut_short_by_logout_runs_again_at_the_next_login_and_only_then_is_success(
    mac: Mac, site: Site
) -> None:
    url = site.manifest(
        {
            "userland": [
                {
                    "name": "long user step",
                    "type": "userscript",
                    "retries": 1,
                    **site.script("u.sh", _TWIN_SCRIPT.format(folder="$HOME")),
                }
            ]
        }
    )
    mac.install(url)
    mac.boot()
    mac.sandbox("login", "alice")
    pids = home(mac) / "pids"
    first = int(mac.wait_for(lambda: pids.exists() and pids.read_text().split()[:1], "the user script")[0])
    assert _owner(first) == ALICE_RUNS_AS
    mac.sandbox("logout", "alice")  # returns once alice's jobs are stopped
    mac.wait_for(lambda: not _alive(first), "the user script to end with the session", timeout=10)
    assert mac.job(agent()) is None and mac.pid(DAEMON) is not None, "the run waits for alice"
    assert not mac.paths.result_file.exists(), "a user step lost to a logout does not end the run"
    mac.sandbox("login", "alice")
    nothing_of_ours_is_left(mac)
    result = mac.result()
    assert result["result"] == "success", result
    assert len(pids.read_text().split()) == 2 and (home(mac) / "ran").exists()
    assert not (home(mac) / "twins").exists(), "the step ran beside its first copy"
    assert mac.spawns(agent()) == 2, "one agent per login"


def _owner(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


# --- 4. login before userland, 5. no user steps while a user is logged in ------------------------------

#: A root step that holds the run in setupassistant until the test says go (bounded: 30 s).
_HOLD = """
touch "$BOOTSTRAPPER_ROOT/holding"
i=0
while [ ! -e "$BOOTSTRAPPER_ROOT/go" ]; do i=$((i+1)); [ $i -gt 600 ] && exit 1; sleep 0.05; done
"""


def _accepted(daemon: int) -> int:
    """Connections the daemon holds on its socket: its descriptors that /proc/net/unix lists as
    connected (state 03) and named (an accepted socket has its listener's name; a socketpair none)."""
    inodes = set()
    for fd in Path(f"/proc/{daemon}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    rows = [line.split() for line in Path("/proc/net/unix").read_text().splitlines()[1:]]
    return sum(1 for row in rows if len(row) >= 8 and row[6] in inodes and row[5] == "03")


def test_an_agent_started_at_a_login_before_userland_is_accepted_and_serves_the_user_steps(
    mac: Mac, site: Site
) -> None:
    url = site.manifest(
        {
            "setupassistant": [{"name": "hold", "type": "rootscript", **site.script("h.sh", _HOLD)}],
            "userland": [
                {
                    "name": "user step",
                    "type": "userscript",
                    **site.script("u.sh", 'echo "$PPID" > "$HOME/served-by"'),
                }
            ],
        }
    )
    mac.install(url)
    mac.boot()
    mac.wait_for((mac.root / "holding").exists, "the root step")
    mac.sandbox("login", "alice")
    agent_pid = mac.wait_for(lambda: mac.pid(agent()), "launchd to start alice's agent")
    daemon = mac.pid(DAEMON)
    assert daemon is not None
    mac.wait_for(lambda: _accepted(daemon) >= 1, "the daemon to accept the agent")
    assert mac.pid(agent()) == agent_pid, "the agent was refused while the root steps still ran"
    (mac.root / "go").touch()
    served = home(mac) / "served-by"
    mac.wait_for(served.exists, "the user step")
    assert int(served.read_text()) == agent_pid, "the user step ran in the agent launchd started at login"
    nothing_of_ours_is_left(mac)
    assert mac.result()["result"] == "success"
    assert mac.spawns(agent()) == 1
    assert not [e for e in mac.journal() if e["op"] == "kickstart"], "the daemon never had to start it"


def test_a_run_without_user_steps_sends_the_logged_in_users_agent_away_without_a_restart(
    mac: Mac, site: Site
) -> None:
    url = site.manifest(
        {"setupassistant": [{"name": "hold", "type": "rootscript", **site.script("h.sh", _HOLD)}]}
    )
    mac.install(url)
    mac.boot()
    mac.sandbox("login", "alice")
    mac.wait_for(lambda: mac.pid(agent()), "launchd to start alice's agent")
    (mac.root / "go").touch()
    nothing_of_ours_is_left(mac)
    assert mac.result()["result"] == "success"
    agent_exits = [e["status"] for e in mac.journal() if e["op"] == "exit" and e.get("target") == agent()]
    assert agent_exits == [0], "the agent exits 0 once, so its KeepAlive does not start it again"
    assert mac.spawns(agent()) == 1
    bootouts = [e for e in mac.journal() if e["op"] == "bootout" and e.get("target") == agent()]
    assert [e["result"] for e in bootouts] == ["unloaded"], "self-removal boots the agent out"


# --- more of the lifecycle: fast user switching ----------------------------------------------------------


@pytest.mark.skipif(not AS_ROOT, reason="alice and bob are told apart by their uids, which needs root")
def test_a_fast_user_switch_leaves_the_user_steps_with_alice_and_sends_bobs_agent_away_once(
    mac: Mac, site: Site
) -> None:
    hold = """
touch "$HOME/holding"
i=0
while [ ! -e "$BOOTSTRAPPER_ROOT/go" ]; do i=$((i+1)); [ $i -gt 600 ] && exit 1; sleep 0.05; done
id -u > "$HOME/first"
"""
    url = site.manifest(
        {
            "userland": [
                {"name": "first", "type": "userscript", **site.script("1.sh", hold)},
                {"name": "second", "type": "userscript", **site.script("2.sh", 'id -u > "$HOME/second"')},
            ]
        }
    )
    mac.install(url)
    mac.boot()
    mac.sandbox("login", "alice")
    alice = mac.root / "Users/alice"
    mac.wait_for((alice / "holding").exists, "alice's first user step")
    mac.sandbox("switch", "bob")
    bob_agent = agent(502)

    def bobs_exits() -> list[int]:
        return [e["status"] for e in mac.journal() if e["op"] == "exit" and e.get("target") == bob_agent]

    mac.wait_for(bobs_exits, "bob's agent to be sent away")
    assert mac.pid(agent()) is not None, "alice's agent keeps serving from her session"
    (mac.root / "go").touch()
    nothing_of_ours_is_left(mac)
    assert mac.result()["result"] == "success"
    assert (alice / "first").read_text() == (alice / "second").read_text() == "501\n"
    assert not any((mac.root / "Users/bob" / name).exists() for name in ("first", "second"))
    assert bobs_exits() == [0] and mac.spawns(bob_agent) == 1, "told once, exits 0, not started again"
    assert mac.spawns(agent()) == 1


# --- more of the lifecycle: SIGKILL -------------------------------------------------------------------------


def test_after_the_daemon_is_sigkilled_the_next_one_reaps_its_orphaned_script_before_running_it_again(
    mac: Mac, site: Site
) -> None:
    script = _TWIN_SCRIPT.format(folder="$BOOTSTRAPPER_ROOT")
    url = site.manifest(
        {"setupassistant": [{"name": "long", "type": "rootscript", **site.script("l.sh", script)}]}
    )
    mac.install(url)
    mac.boot()
    pids = mac.root / "pids"
    first = int(mac.wait_for(lambda: pids.exists() and pids.read_text().split()[:1], "the script")[0])
    daemon = mac.wait_for(lambda: mac.pid(DAEMON), "the daemon")
    os.kill(daemon, signal.SIGKILL)
    mac.wait_for(lambda: (j := mac.job(DAEMON)) and j["last_signal"] == signal.SIGKILL, "launchd to see it")
    assert _alive(first), "a SIGKILLed daemon cannot stop its script: it is orphaned"
    # launchd would start it again after ThrottleInterval (30 s); an admin's kickstart does it now.
    assert cli(["sandbox", "launchctl", str(mac.root), "kickstart", DAEMON]) == 0
    nothing_of_ours_is_left(mac)
    assert mac.result()["result"] == "success"
    assert not _alive(first)
    assert len(pids.read_text().split()) == 2 and not (mac.root / "twins").exists(), "ran beside its orphan"
    assert (
        f"killed process group {first} left by an earlier run"
        in (mac.paths.log_dir / "bootstrapper.log").read_text()
    )


@pytest.mark.parametrize(
    ("sig", "within"),
    [
        (signal.SIGKILL, 30.0),
        # A stopped agent still holds its connection: only the daemon's heartbeats (15 s, then 5 s
        # for the answer) show it is gone; it is then replaced with `kickstart -k`.
        (signal.SIGSTOP, 60.0),
    ],
    ids=["sigkill", "sigstop"],
)
def test_an_agent_killed_or_stopped_mid_script_is_replaced_and_the_script_runs_again_never_beside_the_first(
    mac: Mac, site: Site, sig: signal.Signals, within: float
) -> None:
    script = _TWIN_SCRIPT.format(folder="$HOME")
    url = site.manifest(
        {"userland": [{"name": "long", "type": "userscript", "retries": 1, **site.script("u.sh", script)}]}
    )
    mac.install(url)
    mac.boot()
    mac.sandbox("login", "alice")
    pids = home(mac) / "pids"
    first = int(mac.wait_for(lambda: pids.exists() and pids.read_text().split()[:1], "the user script")[0])
    old = mac.pid(agent())
    assert old is not None
    os.kill(old, sig)
    nothing_of_ours_is_left(mac, timeout=within)
    assert mac.result()["result"] == "success"
    assert not _alive(old), "the first agent is gone, not left behind"
    assert not _alive(first)
    assert len(pids.read_text().split()) == 2 and (home(mac) / "ran").exists()
    assert not (home(mac) / "twins").exists(), "the step ran beside the first agent's script"
    assert mac.spawns(agent()) == 2


def test_a_donotwait_user_script_does_not_hold_the_agent_and_its_exit_code_is_recorded(
    mac: Mac, site: Site
) -> None:
    background = """
echo started > "$HOME/background"
i=0
while [ ! -e "$HOME/next" ]; do i=$((i+1)); [ $i -gt 600 ] && exit 1; sleep 0.05; done
exit 7
"""
    url = site.manifest(
        {
            "userland": [
                {"name": "bg", "type": "userscript", "donotwait": True, **site.script("b.sh", background)},
                {"name": "next", "type": "userscript", **site.script("n.sh", 'id -u > "$HOME/next"')},
            ]
        }
    )
    mac.install(url)
    mac.boot()
    mac.sandbox("login", "alice")
    nothing_of_ours_is_left(mac)
    # The next step ran while the background one waited for it: it did not hold the agent's slot.
    assert (home(mac) / "next").read_text() == f"{ALICE_RUNS_AS}\n"
    steps = {s["name"]: s for s in mac.result()["steps"]}
    assert steps["bg"]["exit_code"] == 7 and steps["bg"]["status"] == "failed", steps
    assert steps["next"]["status"] == "done"
    assert mac.spawns(agent()) == 1
