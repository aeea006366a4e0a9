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
    store.set_phase("userland")
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
