"""The real `bootstrapper run` process, killed and restarted: what launchd does after a crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bootstrapper.engine.state import read_state
from bootstrapper.paths import Paths
from tests.support.runs import run_argv
from tests.support.site import Site

pytestmark = pytest.mark.slow


def _daemon(url: str, root: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(run_argv(url, root), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _status(root: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "bootstrapper", "status", "--sandbox", str(root)]
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=30, env=env)


def _finished(paths: Paths) -> int:
    log = paths.log_dir / "events.jsonl"
    if not log.exists():
        return 0
    count = 0
    for line in log.read_text().splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # the line being written when we looked
        count += event.get("event") == "step_finished" and event.get("status") == "done"
    return count


def _largest_part(paths: Paths) -> int:
    """Bytes in the biggest `.part` file of the staging folder (0 before any)."""
    if not paths.staging_dir.exists():
        return 0
    return max((p.stat().st_size for p in paths.staging_dir.glob("*.part")), default=0)


def test_sigkill_at_every_step_boundary_then_restart_repeats_nothing(site: Site, tmp_path: Path) -> None:
    names = ["one", "two", "three", "four"]
    url = site.manifest(
        {
            "setupassistant": [
                {
                    "name": n,
                    "type": "rootscript",
                    **site.script(f"{n}.sh", f"echo {n} >> $BOOTSTRAPPER_ROOT/ran; sleep 0.3"),
                }
                for n in names
            ]
        }
    )
    paths = Paths(root=tmp_path / "mac")
    for boundary in range(1, len(names)):
        daemon = _daemon(url, paths.root)
        deadline = time.monotonic() + 30
        while _finished(paths) < boundary:
            assert daemon.poll() is None, daemon.stderr.read() if daemon.stderr else ""
            assert time.monotonic() < deadline, "the daemon made no progress"
            time.sleep(0.02)
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait()
    final = _daemon(url, paths.root)
    assert final.wait(timeout=60) == 0
    ran = (paths.root / "ran").read_text().split()
    # Each kill lands just after a step finished, usually while the next one has begun: that
    # interrupted step runs again after the restart; a finished step never does.
    kills = len(names) - 1
    assert [n for i, n in enumerate(ran) if i == 0 or ran[i - 1] != n] == names
    assert len(ran) <= len(names) + kills
    log = (paths.log_dir / "bootstrapper.log").read_text()
    assert log.count("done in an earlier run") == sum(range(1, len(names)))
    record = json.loads(paths.result_file.read_text())
    assert record["result"] == "success"
    assert not paths.install_dir.exists()
    status = _status(paths.root)
    assert status.returncode == 0 and "finished success" in status.stdout


def test_a_second_daemon_is_stopped_by_the_lock(site: Site, tmp_path: Path) -> None:
    url = site.manifest(
        {"setupassistant": [{"name": "slow", "type": "rootscript", **site.script("slow.sh", "sleep 3")}]}
    )
    paths = Paths(root=tmp_path / "mac")
    first = _daemon(url, paths.root)
    try:
        deadline = time.monotonic() + 20
        while not (paths.log_dir / "events.jsonl").exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        second = subprocess.run(
            run_argv(url, paths.root),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert second.returncode == 1
        assert "another bootstrapper daemon (pid" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        assert first.wait(timeout=30) == 0


def test_ctrl_c_exits_130_and_leaves_consistent_state(site: Site, tmp_path: Path) -> None:
    script = site.script("slow.sh", "touch $BOOTSTRAPPER_ROOT/started; sleep 30")
    url = site.manifest({"setupassistant": [{"name": "slow", "type": "rootscript", **script}]})
    paths = Paths(root=tmp_path / "mac")
    daemon = _daemon(url, paths.root)
    deadline = time.monotonic() + 20
    while not (paths.root / "started").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    daemon.send_signal(signal.SIGINT)
    assert daemon.wait(timeout=20) == 130
    stderr = daemon.stderr.read().decode() if daemon.stderr else ""
    assert "Traceback" not in stderr
    assert json.loads(paths.state_file.read_text())["version"] == 1
    assert [s.status for s in read_state(paths.state_file).steps.values()] == ["running"]
    assert list(paths.staging_dir.iterdir()) == []
    assert not list(paths.install_dir.glob(".*.tmp"))
    status = _status(paths.root)
    assert status.returncode == 0 and "interrupted" in status.stdout


def test_sigkill_mid_download_then_restart_resumes_the_part_file(tmp_path: Path) -> None:
    import hashlib

    import yaml

    from tests.support.httpfault import FaultServer

    blob = os.urandom(3 * 1024 * 1024)
    paths = Paths(root=tmp_path / "mac")
    with FaultServer() as srv:
        first_attempt = {"done": False}

        def big(ex: object) -> None:
            # Slow the first attempt so it can be killed mid-body; the resumed one runs at full speed.
            rate = None if first_attempt["done"] else 512 * 1024
            ex.serve(blob, rate=rate)  # type: ignore[attr-defined]

        url = srv.add("/big.bin", big)
        doc = {
            "format": 1,
            "settings": {"allow_http": True},
            "setupassistant": [
                {
                    "name": "big",
                    "type": "rootfile",
                    "url": url,
                    "hash": hashlib.sha256(blob).hexdigest(),
                    "size": len(blob),
                    "file": "/Library/Big/big.bin",
                },
            ],
        }
        manifest = yaml.safe_dump(doc).encode()
        murl = srv.add("/m.yaml", lambda ex: ex.serve(manifest, etag=None))  # type: ignore[attr-defined]
        daemon = _daemon(murl, paths.root)
        deadline = time.monotonic() + 30
        while _largest_part(paths) <= 256 * 1024:
            assert daemon.poll() is None
            assert time.monotonic() < deadline, "the download never started"
            time.sleep(0.02)
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait()
        first_attempt["done"] = True
        assert _daemon(murl, paths.root).wait(timeout=60) == 0
        ranges = [s.headers.get("range") for s in srv.requests("/big.bin")]
    assert (paths.root / "Library/Big/big.bin").read_bytes() == blob
    assert ranges[0] is None
    assert ranges[-1] is not None
    assert int(ranges[-1].removeprefix("bytes=").rstrip("-")) > 256 * 1024
