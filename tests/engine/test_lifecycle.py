"""The daemon's life as launchd gives it: SIGTERM (bootout, shutdown, reboot) is an orderly stop, and
after a SIGKILL the next start kills what the dead daemon left running before the step runs again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bootstrapper import process
from bootstrapper.engine.state import read_state
from bootstrapper.errors import StateError
from bootstrapper.paths import Paths
from tests.support.runs import run_argv
from tests.support.site import Site

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

#: First run: the script records its pid (its group's id) and waits, with a child, for a long time.
#: A later run says "twin" when the first copy still runs beside it, then finishes at once.
_SCRIPT = """
out=$BOOTSTRAPPER_ROOT/pids
if [ -s "$out" ]; then
  old=$(head -n 1 "$out")
  if [ -e /proc/$old ] && ! grep -q '^State:.*Z' /proc/$old/status; then echo twin >> $BOOTSTRAPPER_ROOT/twins; fi
  echo $$ >> "$out"
  exit 0
fi
echo $$ >> "$out"
sleep 60 &
wait
"""


def _daemon(url: str, root: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(run_argv(url, root), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _first_pid(root: Path, daemon: subprocess.Popen[bytes]) -> int:
    pids = root / "pids"
    deadline = time.monotonic() + 30
    while not (pids.exists() and pids.read_text().strip()):
        assert daemon.poll() is None, daemon.stderr.read() if daemon.stderr else ""
        assert time.monotonic() < deadline, "the script never started"
        time.sleep(0.02)
    return int(pids.read_text().split()[0])


def _recorded(paths: Paths) -> list[int]:
    """The groups the state records (the daemon appends them to its journal just after the fork)."""
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(OSError, StateError, StopIteration):
            groups = [g["pgid"] for g in next(iter(read_state(paths.state_file).steps.values())).groups]
            if groups:
                return groups
        assert time.monotonic() < deadline, "the state never recorded the script's group"
        time.sleep(0.02)


def _wait_gone(pgid: int, timeout: float = 10.0) -> bool:
    until = time.monotonic() + timeout
    while process.group_alive(pgid):
        if time.monotonic() > until:
            return False
        time.sleep(0.05)
    return True


def test_sigterm_stops_the_daemon_and_the_scripts_whole_group(site: Site, tmp_path: Path) -> None:
    url = site.manifest(
        {"setupassistant": [{"name": "long", "type": "rootscript", **site.script("l.sh", _SCRIPT)}]}
    )
    paths = Paths(root=tmp_path / "mac")
    daemon = _daemon(url, paths.root)
    pgid = _first_pid(paths.root, daemon)
    assert _recorded(paths) == [pgid]
    began = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=20) == 130
    assert time.monotonic() - began < process.KILL_GRACE + 5  # well within launchd's ExitTimeOut
    assert _wait_gone(pgid, 1.0), "the script (or its child) outlived the daemon"
    stderr = daemon.stderr.read().decode() if daemon.stderr else ""
    assert "Traceback" not in stderr
    step = next(iter(read_state(paths.state_file).steps.values()))
    assert step.status == "running" and step.groups == []
    # At least once: the interrupted step runs again after the restart, alone.
    assert _daemon(url, paths.root).wait(timeout=60) == 0
    assert len((paths.root / "pids").read_text().split()) == 2
    assert not (paths.root / "twins").exists()


def test_after_a_sigkill_the_next_start_reaps_the_orphan_before_running_the_step_again(
    site: Site, tmp_path: Path
) -> None:
    url = site.manifest(
        {"setupassistant": [{"name": "long", "type": "rootscript", **site.script("l.sh", _SCRIPT)}]}
    )
    paths = Paths(root=tmp_path / "mac")
    daemon = _daemon(url, paths.root)
    pgid = _first_pid(paths.root, daemon)
    try:
        assert _recorded(paths) == [pgid]
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait()
        assert process.group_alive(pgid), "a SIGKILLed daemon cannot kill its script: it is orphaned"
        again = _daemon(url, paths.root)
        assert again.wait(timeout=60) == 0, again.stderr.read() if again.stderr else ""
        assert not (paths.root / "twins").exists(), "the step ran beside its orphaned first copy"
        assert not process.group_alive(pgid)
        assert len((paths.root / "pids").read_text().split()) == 2
        log = (paths.log_dir / "bootstrapper.log").read_text()
        assert f"killed process group {pgid} left by an earlier run" in log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def test_a_group_whose_leader_pid_was_reused_is_left_alone() -> None:
    stranger = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        recorded = process.Group(stranger.pid, "1")  # started at another time than this process
        assert not asyncio.run(process.reap_group(recorded))
        assert stranger.poll() is None
        assert asyncio.run(process.reap_group(process.Group(stranger.pid, process.start_time(stranger.pid))))
        assert stranger.wait(timeout=5) == -signal.SIGKILL
    finally:
        stranger.kill()
        stranger.wait()
