from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bootstrapper import atomic
from bootstrapper.atomic import write_atomic, write_json_atomic
from bootstrapper.engine.state import STATE_VERSION, DaemonLock, StateStore, StepKey, read_state
from bootstrapper.errors import LockedError, StateError

KEYS = [
    StepKey("preflight[0]", "Check", "f0"),
    StepKey("userland[0]", "Chrome", "f1"),
    StepKey("userland[1]", "Dock", "f2"),
]


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    return tmp_path / "Library" / "bootstrapper" / "state.json"


def _store(path: Path, clock: FakeClock | None = None) -> StateStore:
    store = StateStore.load(path, clock=clock or FakeClock())
    store.begin_attempt("run-1", "https://example.com/m.yaml")
    store.reconcile(KEYS)
    return store


def test_round_trip_keeps_every_field(state_file: Path) -> None:
    clock = FakeClock()
    store = _store(state_file, clock)
    store.set_stage("userland")
    store.mark_running("preflight[0]")
    clock.tick(2.5)
    store.mark_done("preflight[0]", exit_code=0)
    store.mark_running("userland[0]")
    store.mark_failed("userland[0]", "installer exited with 1", exit_code=1)
    store.mark_skipped("userland[1]", "condition false")

    again = StateStore.load(state_file)
    assert again.state == store.state
    assert [s.status for s in again.state.steps.values()] == ["done", "failed", "skipped"]
    assert again.state.steps["userland[0]"].exit_code == 1
    assert again.state.steps["userland[0]"].attempts == 1
    assert again.state.steps["preflight[0]"].duration == 2.5
    assert again.state.phase == "userland"
    assert json.loads(state_file.read_text())["version"] == STATE_VERSION
    assert state_file.stat().st_mode & 0o777 == 0o600


def test_every_mark_is_persisted_at_once(state_file: Path) -> None:
    store = _store(state_file)
    store.mark_running("userland[0]")
    assert read_state(state_file).steps["userland[0]"].status == "running"


def test_interrupted_step_runs_again_and_done_steps_are_kept(state_file: Path) -> None:
    store = _store(state_file)
    store.mark_running("preflight[0]")
    store.mark_done("preflight[0]")
    store.mark_running("userland[0]")  # the daemon is SIGKILLed here

    resumed = StateStore.load(state_file)
    resumed.begin_attempt("run-2", "https://example.com/m.yaml")
    resumed.reconcile(KEYS)
    steps = resumed.state.steps
    assert steps["preflight[0]"].status == "done"
    assert steps["userland[0]"].status == "pending"
    assert steps["userland[0]"].attempts == 1
    assert "interrupted" in steps["userland[0]"].reason
    assert resumed.state.run_attempt == 2
    assert resumed.state.run_id == "run-1"
    assert resumed.attempts_exhausted(2) and not resumed.attempts_exhausted(3)


def test_changed_manifest_matches_steps_by_name_and_fingerprint(state_file: Path) -> None:
    store = _store(state_file)
    for key in KEYS:
        store.mark_running(key.step_id)
        store.mark_done(key.step_id)

    # A new item is inserted first, Chrome moves, Dock's content changed.
    store.reconcile(
        [
            StepKey("userland[0]", "New", "f9"),
            StepKey("userland[1]", "Chrome", "f1"),
            StepKey("userland[2]", "Dock", "f2-changed"),
        ]
    )
    steps = StateStore.load(state_file).state.steps
    assert list(steps) == ["userland[0]", "userland[1]", "userland[2]"]
    assert [s.status for s in steps.values()] == ["pending", "done", "pending"]
    assert steps["userland[1]"].name == "Chrome"


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "empty"),
        (b'{"version": 1, "run_id": "r", "steps": [', "not valid JSON"),
        (b"\xff\xfe garbage", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"version": 99, "steps": []}', "unknown state version 99"),
        (b'{"version": 1, "steps": [{"step_id": "a"}]}', "malformed state"),
    ],
    ids=["empty", "truncated", "binary", "not-an-object", "future-version", "missing-keys"],
)
def test_unreadable_state_is_set_aside_and_run_starts_over(
    state_file: Path, content: bytes, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    state_file.parent.mkdir(parents=True)
    state_file.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="bootstrapper.engine.state"):
        store = StateStore.load(state_file, clock=FakeClock())
    assert store.state.steps == {} and store.state.run_attempt == 0
    asides = list(state_file.parent.glob("state.json.corrupt-*"))
    assert [p.name for p in asides] == ["state.json.corrupt-20240501T120000Z"]
    assert asides[0].read_bytes() == content
    assert not state_file.exists()
    assert why in caplog.text and "starting the run over" in caplog.text and str(asides[0]) in caplog.text

    store.begin_attempt("run-2", "m.yaml")
    store.reconcile(KEYS)
    assert read_state(state_file).run_attempt == 1


def test_a_second_corrupt_file_in_the_same_second_does_not_overwrite_the_first(state_file: Path) -> None:
    state_file.parent.mkdir(parents=True)
    clock = FakeClock()
    for content in (b"one", b"two"):
        state_file.write_bytes(content)
        StateStore.load(state_file, clock=clock)
    assert sorted(p.read_bytes() for p in state_file.parent.glob("state.json.corrupt-*")) == [b"one", b"two"]


def test_read_state_reports_without_moving_anything(state_file: Path) -> None:
    state_file.parent.mkdir(parents=True)
    state_file.write_bytes(b"{")
    with pytest.raises(StateError, match="not valid JSON"):
        read_state(state_file)
    assert state_file.exists()


def test_unknown_step_is_a_clear_error(state_file: Path) -> None:
    store = _store(state_file)
    with pytest.raises(KeyError, match="no step 'nope'"):
        store.mark_done("nope")


def test_crash_between_temp_write_and_replace_leaves_old_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "state.json"
    write_json_atomic(target, {"old": True})

    def crash(src: object, dst: object) -> None:
        raise OSError("simulated power cut")

    monkeypatch.setattr(atomic.os, "replace", crash)
    with pytest.raises(OSError, match="simulated power cut"):
        write_json_atomic(target, {"new": True})
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_state_save_failure_keeps_previous_state_on_disk(
    state_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(state_file)
    store.mark_running("preflight[0]")

    def crash(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", crash)
    with pytest.raises(
        StateError, match=r"state.json: No space left on device; free some space on that disk$"
    ):
        store.mark_done("preflight[0]")
    monkeypatch.undo()
    assert read_state(state_file).steps["preflight[0]"].status == "running"
    assert sorted(p.name for p in state_file.parent.iterdir()) == ["state.json", "state.json.prev"]


def test_a_corrupt_state_resumes_from_the_last_good_copy(
    state_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(state_file)
    store.mark_running("preflight[0]")
    store.mark_done("preflight[0]", 0)
    state_file.write_bytes(b'{"version": 1, "steps": [')
    with caplog.at_level(logging.WARNING, logger="bootstrapper.engine.state"):
        again = StateStore.load(state_file, clock=FakeClock())
    assert again.state.steps["preflight[0]"].status == "done"
    assert "resuming from the last good copy" in caplog.text
    assert list(state_file.parent.glob("state.json.corrupt-*"))


def test_when_the_last_good_copy_is_unreadable_too_the_run_starts_over(state_file: Path) -> None:
    _store(state_file)
    state_file.write_bytes(b"")
    state_file.with_name("state.json.prev").write_bytes(b"[]")
    assert StateStore.load(state_file, clock=FakeClock()).state.steps == {}


def test_write_atomic_sets_the_mode_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_atomic(tmp_path / "r.json", b"{}", mode=0o644)
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "r.json").read_bytes() == b"{}"


HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from bootstrapper.engine.state import DaemonLock
    with DaemonLock(Path(sys.argv[1])):
        print("locked", flush=True)
        sys.stdin.read()
    """
)


def test_second_daemon_is_stopped_by_the_lock_naming_the_holder(tmp_path: Path) -> None:
    lock_file = tmp_path / "Library" / "bootstrapper" / "daemon.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError, match=rf"pid {holder.pid}\b.*daemon\.lock"):
            DaemonLock(lock_file).acquire()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
    # The holder is gone: the kernel released its lock, so the next daemon gets it.
    with DaemonLock(lock_file) as lock:
        assert lock.held
        assert lock_file.read_text().strip() == str(os.getpid())
    assert not lock.held


def test_lock_of_a_killed_holder_is_released(tmp_path: Path) -> None:
    lock_file = tmp_path / "daemon.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait(timeout=10)
    with DaemonLock(lock_file) as lock:
        assert lock.held
