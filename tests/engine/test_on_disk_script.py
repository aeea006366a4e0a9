"""An InstallApplications `rootscript` with no `url`: the script an earlier package put on the Mac.
It is validated and planned as "already on disk", checked by sha256 (and for who could change it)
before it runs, never downloaded, and never removed by self-removal."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from bootstrapper.cli import main
from bootstrapper.paths import Paths
from tests.engine.conftest import result, run_sandbox

pytestmark = pytest.mark.slow

SCRIPT = b'#!/bin/sh\necho "hello from disk"\ntouch "$BOOTSTRAPPER_ROOT/ran"\n'
WHERE = "/Library/Scripts/hello.sh"


def _manifest(tmp_path: Path, digest: str) -> Path:
    path = tmp_path / "bootstrap.json"
    item = {"name": "on disk", "type": "rootscript", "file": WHERE, "hash": digest}
    path.write_text(json.dumps({"setupassistant": [item]}))
    return path


def _place(paths: Paths, data: bytes) -> Path:
    script = paths.system(WHERE)
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_bytes(data)
    script.chmod(0o755)
    return script


def test_validate_and_plan_say_it_is_already_on_disk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _manifest(tmp_path, hashlib.sha256(SCRIPT).hexdigest())
    assert main(["validate", str(manifest)]) == 0
    capsys.readouterr()
    assert main(["plan", str(manifest), "--json"]) == 0
    (step,) = json.loads(capsys.readouterr().out)["steps"]
    assert (step["action"], step["url"], step["file"]) == ("run", None, WHERE)
    assert step["reason"].startswith(f"already on disk at {WHERE}: its sha256 is checked before it runs")


def test_it_runs_once_its_hash_matches_and_stays_after_self_removal(sandbox: Paths, tmp_path: Path) -> None:
    script = _place(sandbox, SCRIPT)
    assert run_sandbox(sandbox, str(_manifest(tmp_path, hashlib.sha256(SCRIPT).hexdigest()))) == 0
    assert (sandbox.root / "ran").exists()
    (step,) = result(sandbox)["steps"]
    assert step["status"] == "done"
    assert "step 'on disk' stdout: hello from disk" in (sandbox.log_dir / "bootstrapper.log").read_text()
    assert script.read_bytes() == SCRIPT  # not this run's download: self-removal leaves it


def test_a_hash_mismatch_fails_the_step_and_runs_nothing(sandbox: Paths, tmp_path: Path) -> None:
    script = _place(sandbox, SCRIPT.replace(b"hello", b"HACKED"))
    assert run_sandbox(sandbox, str(_manifest(tmp_path, hashlib.sha256(SCRIPT).hexdigest()))) == 1
    assert not (sandbox.root / "ran").exists()
    (step,) = result(sandbox)["steps"]
    assert step["status"] == "failed"
    assert step["reason"].startswith(f"refused: {script}: holds other bytes (sha256 ")
    assert script.exists()


def test_a_missing_file_fails_the_step_with_a_clear_reason(sandbox: Paths, tmp_path: Path) -> None:
    assert run_sandbox(sandbox, str(_manifest(tmp_path, hashlib.sha256(SCRIPT).hexdigest()))) == 1
    (step,) = result(sandbox)["steps"]
    assert step["status"] == "failed"
    assert step["reason"] == (
        f"refused: {sandbox.system(WHERE)}: does not exist; the item has no url, so an earlier package"
        " must put it there"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file to another uid")
def test_a_script_another_user_could_change_is_refused(sandbox: Paths, tmp_path: Path) -> None:
    script = _place(sandbox, SCRIPT)
    os.chown(script, 501, 20)
    assert run_sandbox(sandbox, str(_manifest(tmp_path, hashlib.sha256(SCRIPT).hexdigest()))) == 1
    assert not (sandbox.root / "ran").exists()
    (step,) = result(sandbox)["steps"]
    assert "is owned by uid 501" in step["reason"]
