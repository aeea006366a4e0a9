from __future__ import annotations

import json
from pathlib import Path

import pytest

from bootstrapper.cli import main
from bootstrapper.engine.state import StateStore, StepKey
from bootstrapper.paths import Paths


def _make_run(root: Path) -> Path:
    store = StateStore.load(Paths(root=root).state_file)
    store.begin_attempt("run-7", "manifests/demo.yaml")
    store.reconcile([StepKey("a", "Chrome", "f1"), StepKey("b", "[red]Dock[/]\x1b[2J", "f2")])
    store.set_stage("userland")
    store.mark_running("a")
    store.mark_done("a", 0)
    store.mark_running("b")
    return store.path


def test_status_json_reports_the_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _make_run(tmp_path)
    assert main(["status", "--json", "--sandbox", str(tmp_path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["run_id"] == "run-7" and doc["phase"] == "userland" and doc["run_attempt"] == 1
    assert doc["counts"] == {"done": 1, "running": 1}
    assert [s["status"] for s in doc["steps"]] == ["done", "running"]


def test_status_table_escapes_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state_file = _make_run(tmp_path)
    before = state_file.read_bytes()
    assert main(["status", "--sandbox", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "run-7" in out and "userland" in out and "Chrome" in out and "done" in out
    assert "[red]Dock[/]\\x1b[2J" in out and "\x1b" not in out
    assert state_file.read_bytes() == before  # status never writes


def test_status_without_state_file_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--sandbox", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: no state file at ")


def test_status_of_a_corrupt_state_file_is_reported_and_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_file = Paths(root=tmp_path).state_file
    state_file.parent.mkdir(parents=True)
    state_file.write_text('{"version": 1, "ste')
    assert main(["status", "--sandbox", str(tmp_path)]) == 1
    assert "is unreadable: the file is not valid JSON" in capsys.readouterr().err
    assert state_file.read_text() == '{"version": 1, "ste'


def _record(root: Path, result: str = "partial", failed: list[str] | None = None) -> None:
    paths = Paths(root=root)
    paths.result_file.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "version": 1,
        "manifest": "https://example.com/m.yaml",
        "result": result,
        "retrying": False,
        "failed_steps": failed or ["Dock setup"],
        "started": "2026-12-01T10:00:00+00:00",
        "finished": "2026-12-01T10:05:00+00:00",
        "duration_seconds": 300.0,
        "steps": [],
    }
    paths.result_file.write_text(json.dumps(doc))


def test_status_after_self_removal_shows_the_completion_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _record(tmp_path)
    assert main(["status", "--sandbox", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "finished partial" in out and "Dock setup" in out and "2026-12-01T10:05:00" in out
    assert main(["status", "--json", "--sandbox", str(tmp_path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["from"] == "completion record" and doc["result"] == "partial"
    assert doc["failed_steps"] == ["Dock setup"]


def test_status_of_a_run_whose_daemon_is_gone_says_interrupted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _make_run(tmp_path)
    assert main(["status", "--sandbox", str(tmp_path)]) == 0
    assert "interrupted" in capsys.readouterr().out
    assert main(["status", "--json", "--sandbox", str(tmp_path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["interrupted"] is True and doc["daemon_pid"] is None


def test_status_of_a_run_whose_daemon_holds_the_lock_says_in_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bootstrapper.engine.state import DaemonLock

    _make_run(tmp_path)
    with DaemonLock(Paths(root=tmp_path).lock_file):
        assert main(["status", "--sandbox", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        assert main(["status", "--json", "--sandbox", str(tmp_path)]) == 0
        doc = json.loads(capsys.readouterr().out)
    assert "in progress" in out and "interrupted" not in out
    assert doc["interrupted"] is False and isinstance(doc["daemon_pid"], int)


def test_status_of_an_unreadable_completion_record_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = Paths(root=tmp_path)
    paths.result_file.parent.mkdir(parents=True, exist_ok=True)
    paths.result_file.write_text("[1, 2")
    assert main(["status", "--sandbox", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a JSON object" in err
