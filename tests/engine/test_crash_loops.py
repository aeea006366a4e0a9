"""The daemon under launchd: one item's bytes or one bad start never becomes a crash or a restart loop.

launchd starts the daemon again after every non-zero exit, so each failure here must be recorded,
counted toward `max_attempts`, and end with an exit code that says what happened, never exit 3.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from bootstrapper import atomic
from bootstrapper.engine import state as state_module
from bootstrapper.engine.context import RunContext
from bootstrapper.engine.kinds import RUNNERS
from bootstrapper.engine.kinds.base import Outcome
from bootstrapper.engine.provision import provision
from bootstrapper.engine.state import read_state
from bootstrapper.manifest.kinds import ItemType
from bootstrapper.manifest.model import Item
from bootstrapper.paths import Paths
from bootstrapper.platform.sandbox import SandboxPlatform
from tests.engine.conftest import result, run_sandbox, statuses
from tests.support.runs import run_argv
from tests.support.site import Site


class Broken:
    """A runner with a bug: what any unexpected exception inside one step looks like."""

    async def run(self, item: Item, file: Path | None, ctx: RunContext) -> Outcome:
        raise RuntimeError(f"a bug while running {item.name}")


def _events(paths: Paths) -> list[dict[str, Any]]:
    lines = (paths.log_dir / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


# --- one step's error is that step's failure ----------------------------------------------------


def test_a_bug_in_a_step_fails_that_step_and_the_run_goes_on(
    site: Site, sandbox: Paths, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(RUNNERS, ItemType.ROOTSCRIPT, Broken())
    data_url, digest = site.add("f.txt", b"after")
    url = site.manifest(
        {
            "setupassistant": [
                {"name": "buggy", "type": "rootscript", **site.script("a.sh", "exit 0")},
                {
                    "name": "next",
                    "type": "rootfile",
                    "file": "/Library/Example/f.txt",
                    "url": data_url,
                    "hash": digest,
                },
            ]
        }
    )
    with caplog.at_level(logging.ERROR):
        assert run_sandbox(sandbox, url) == 0
    assert statuses(sandbox) == {"setupassistant[0]": "failed", "setupassistant[1]": "done"}
    reason = result(sandbox)["steps"][0]["reason"]
    assert reason == "unexpected error: RuntimeError: a bug while running buggy; see the log"
    assert "Traceback" in caplog.text  # the log keeps what a developer needs


def test_a_bug_in_a_step_that_must_not_fail_fails_the_run_and_counts_an_attempt(
    site: Site, sandbox: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(RUNNERS, ItemType.ROOTSCRIPT, Broken())
    url = site.manifest(
        {
            "setupassistant": [
                {
                    "name": "buggy",
                    "type": "rootscript",
                    "fail_policy": "failure_is_not_an_option",
                    **site.script("a.sh", "exit 0"),
                }
            ]
        }
    )
    assert run_sandbox(sandbox, url) == 1
    doc = result(sandbox)
    assert (doc["result"], doc["retrying"], doc["attempt"]) == ("failed", True, 1)
    saved = read_state(sandbox.state_file)
    assert saved.run_attempt == 1 and saved.steps["setupassistant[0]"].attempts == 1


# --- a full disk when the daemon starts -----------------------------------------------------------


def test_a_full_disk_at_start_is_one_line_a_counted_attempt_and_exit_1(
    site: Site, sandbox: Paths, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url = site.manifest(
        {"setupassistant": [{"name": "a", "type": "rootscript", **site.script("a.sh", "exit 0")}]}
    )
    writes = {"n": 0}
    real = atomic.write_json_atomic

    def full_once(path: Path, obj: Any, mode: int = 0o600) -> None:
        writes["n"] += 1
        if writes["n"] == 1:  # the run's first save: the disk is full, then a little is freed
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, obj, mode)

    monkeypatch.setattr(state_module, "write_json_atomic", full_once)
    with caplog.at_level(logging.ERROR):
        assert run_sandbox(sandbox, url) == 1
    doc = result(sandbox)
    assert doc["result"] == "failed"
    assert doc["reason"] == (
        f"cannot save the state file {sandbox.state_file}: No space left on device; free some space on that disk"
    )
    assert read_state(sandbox.state_file).run_attempt == 1
    assert f"the run failed: {doc['reason']}" in caplog.text
    assert "Traceback" not in caplog.text
    assert not (sandbox.root / "ran").exists()


@pytest.fixture
def full_install_dir() -> Iterator[Paths]:
    """A provisioned sandbox whose install folder is a full 64 KiB tmpfs (state, lock, staging)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    root = Path(tempfile.mkdtemp(prefix="fulldisk-"))
    paths = Paths(root=root)
    import asyncio

    asyncio.run(provision(paths, SandboxPlatform(paths)))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(paths.install_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        fd = os.open(paths.install_dir / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)
        yield paths
    finally:
        subprocess.run(["umount", str(paths.install_dir)], check=False)
        subprocess.run(["rm", "-rf", str(root)], check=False)


def test_a_real_full_disk_gives_one_line_and_exit_1_not_a_traceback(
    site: Site, full_install_dir: Paths
) -> None:
    paths = full_install_dir
    url = site.manifest(
        {"setupassistant": [{"name": "a", "type": "rootscript", **site.script("a.sh", "exit 0")}]}
    )
    done = subprocess.run(run_argv(url, paths.root), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    doc = result(paths)
    assert doc["result"] == "failed" and doc["retrying"] is True
    assert doc["reason"].endswith("state.json: No space left on device; free some space on that disk")


# --- an invalid manifest at run time ---------------------------------------------------------------


def test_an_invalid_manifest_is_recorded_reported_and_counted_until_the_daemon_gives_up(
    site: Site, sandbox: Paths, httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("", status=204)
    url = site.manifest({"setupassistant": [{"name": "a", "type": "rootscript", "url": "a.sh"}]})
    hook = httpserver.url_for("/hook")
    with caplog.at_level(logging.ERROR):
        assert run_sandbox(sandbox, url, webhook_url=hook, max_attempts=2) == 2
    doc = result(sandbox)
    assert (doc["result"], doc["retrying"], doc["attempt"]) == ("failed", True, 1)
    assert "hash" in doc["reason"] and doc["steps"] == []
    assert f"the run failed: {doc['reason']}" in caplog.text
    events = _events(sandbox)
    assert {"event": "message", "level": "error", "text": doc["reason"]}.items() <= events[-2].items()
    assert events[-1]["event"] == "run_finished" and events[-1]["result"] == "failed"
    posted = [json.loads(request.get_data()) for request, _ in httpserver.log]
    assert [p["event"] for p in posted] == ["run_started", "run_finished"]
    assert posted[-1]["result"] == "failed"
    assert read_state(sandbox.state_file).run_attempt == 1
    assert sandbox.launch_daemon_plist.exists(), "launchd is to run us again"

    # launchd's second start: the last attempt, so the daemon gives up and removes itself
    assert run_sandbox(sandbox, url, webhook_url=hook, max_attempts=2) == 2
    doc = result(sandbox)
    assert (doc["result"], doc["retrying"], doc["attempt"]) == ("failed", False, 2)
    assert not sandbox.launch_daemon_plist.exists() and not sandbox.install_dir.exists()


# --- a corrupt state file -------------------------------------------------------------------------


def test_a_corrupt_state_file_does_not_run_finished_root_scripts_again(site: Site, sandbox: Paths) -> None:
    ran = "$BOOTSTRAPPER_ROOT/ran"
    url = site.manifest(
        {
            "setupassistant": [
                {"name": "one", "type": "rootscript", **site.script("1.sh", f"echo one >> {ran}")},
                {"name": "two", "type": "rootscript", **site.script("2.sh", f"echo two >> {ran}")},
                {
                    "name": "three",
                    "type": "rootscript",
                    "fail_policy": "failure_is_not_an_option",
                    **site.script(
                        "3.sh", f'[ -e "$BOOTSTRAPPER_ROOT/ready" ] || exit 1; echo three >> {ran}'
                    ),
                },
            ]
        }
    )
    assert run_sandbox(sandbox, url) == 1
    assert statuses(sandbox) == {
        "setupassistant[0]": "done",
        "setupassistant[1]": "done",
        "setupassistant[2]": "failed",
    }
    sandbox.state_file.write_bytes(b'{"version": 1, "steps": [')  # a torn write, a bad sector
    (sandbox.root / "ready").touch()
    assert run_sandbox(sandbox, url) == 0
    assert (sandbox.root / "ran").read_text().split() == ["one", "two", "three"]


# --- what root runs is a copy only root can reach ---------------------------------------------------


def test_a_root_script_runs_from_a_staged_copy_that_is_removed_after(site: Site, sandbox: Paths) -> None:
    body = 'echo "$0" > "$BOOTSTRAPPER_ROOT/self"; stat -c %a "$0" >> "$BOOTSTRAPPER_ROOT/self"'
    url = site.manifest(
        {
            "setupassistant": [
                {"name": "s", "type": "rootscript", **site.script("s.sh", body)},
                {
                    "name": "keep",
                    "type": "rootscript",
                    **site.script("k.sh", "exit 1"),
                    "fail_policy": "failure_is_not_an_option",
                },
            ]
        }
    )
    assert run_sandbox(sandbox, url) == 1  # stops before self-removal, so staging can be looked at
    ran, mode = (sandbox.root / "self").read_text().split()
    assert Path(ran).parent == sandbox.staging_dir and mode == "700"
    assert not Path(ran).exists()
    assert sorted(p.name for p in sandbox.staging_dir.iterdir() if not p.name.endswith(".part")) == []
