from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bootstrapper import atomic
from bootstrapper.atomic import write_atomic, write_json_atomic
from bootstrapper.engine import state as state_module
from bootstrapper.engine.state import (
    STATE_VERSION,
    DaemonLock,
    StateStore,
    StepKey,
    journal_path,
    last_good_path,
    read_state,
)
from bootstrapper.errors import LockedError, StateError
from bootstrapper.paths import Paths
from tests.support.runs import run_argv
from tests.support.site import Site

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
    assert sorted(p.name for p in state_file.parent.iterdir()) == [
        "state.json",
        "state.json.journal",
        "state.json.prev",
    ]
    store.mark_done("preflight[0]")  # the disk has room again: the cut journal takes the next record
    assert read_state(state_file).steps["preflight[0]"].status == "done"


def test_a_snapshot_that_fails_keeps_the_journal_and_the_state_it_gives(
    state_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(state_file)
    store.mark_running("preflight[0]")

    def crash(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", crash)
    with pytest.raises(StateError, match=r"free some space on that disk$"):
        store.set_result("failed")
    monkeypatch.undo()
    saved = read_state(state_file)
    assert saved.result is None and saved.steps["preflight[0]"].status == "running"


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


def _records(state_file: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in journal_path(state_file).read_text().splitlines()]


def test_a_step_appends_one_record_and_leaves_the_snapshot_alone(state_file: Path) -> None:
    store = _store(state_file)
    snapshot = state_file.read_bytes()
    store.set_stage("preflight")
    store.mark_running("preflight[0]")
    store.add_group("preflight[0]", 4242, "123")
    store.drop_group("preflight[0]", 4242)
    store.mark_done("preflight[0]", 0)
    assert state_file.read_bytes() == snapshot
    assert last_good_path(state_file).read_bytes() == snapshot
    records = _records(state_file)
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    assert records[0]["run"] == {"phase": "preflight"}
    assert [r["step"]["status"] for r in records[1:]] == ["running", "running", "running", "done"]
    assert records[2]["step"]["groups"] == [{"pgid": 4242, "started": "123"}]
    assert journal_path(state_file).stat().st_mode & 0o777 == 0o600

    again = StateStore.load(state_file)
    assert again.state == store.state
    assert again.state.phase == "preflight" and again.state.steps["preflight[0]"].status == "done"


@pytest.mark.parametrize("items", [10, 1000])
def test_what_a_step_writes_does_not_grow_with_the_manifest(tmp_path: Path, items: int) -> None:
    path = tmp_path / "state.json"
    store = StateStore.load(path, clock=FakeClock())
    store.begin_attempt("run-1", "m.yaml")
    store.reconcile(StepKey(f"setupassistant[{n}]", f"s{n}", f"f{n}") for n in range(items))
    snapshot = path.stat().st_mtime_ns, path.read_bytes()
    last = f"setupassistant[{items - 1}]"
    store.mark_running(last)
    store.add_group(last, 4242, "123")
    store.drop_group(last, 4242)
    store.mark_done(last, 0)
    assert (path.stat().st_mtime_ns, path.read_bytes()) == snapshot
    assert journal_path(path).stat().st_size < 1500  # four records of one step, whatever the plan


def test_the_end_of_the_run_folds_the_journal_into_the_snapshot(state_file: Path) -> None:
    store = _store(state_file)
    store.mark_running("preflight[0]")
    store.mark_done("preflight[0]", 0)
    store.set_result("success")
    assert journal_path(state_file).read_bytes() == b""
    on_disk = json.loads(state_file.read_text())
    assert on_disk["result"] == "success" and on_disk["steps"][0]["status"] == "done"
    assert json.loads(last_good_path(state_file).read_text()) == on_disk
    assert StateStore.load(state_file).state == store.state


def test_a_torn_last_record_is_ignored_with_a_warning_and_cut_before_the_next(
    state_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(state_file)
    store.mark_running("preflight[0]")
    store.mark_done("preflight[0]", 0)
    store.mark_running("userland[0]")
    store.close()
    journal = journal_path(state_file)
    whole = journal.read_bytes()
    journal.write_bytes(whole[: len(whole) - 40])  # the power went mid-append of the last record
    with caplog.at_level(logging.WARNING, logger="bootstrapper.engine.state"):
        again = StateStore.load(state_file, clock=FakeClock())
    assert "ends in a torn record" in caplog.text and str(journal) in caplog.text
    assert again.state.steps["preflight[0]"].status == "done"
    assert again.state.steps["userland[0]"].status == "pending"

    again.mark_running("userland[1]")
    assert b'"userland[0]"' not in journal.read_bytes()  # the torn bytes were cut, not appended to
    assert [r["step"]["step_id"] for r in _records(state_file)] == [
        "preflight[0]",
        "preflight[0]",
        "userland[1]",
    ]
    assert read_state(state_file).steps["userland[1]"].status == "running"


def test_an_unreadable_record_is_skipped_and_later_ones_still_apply(
    state_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(state_file)
    store.mark_running("preflight[0]")
    store.mark_done("preflight[0]", 0)
    store.close()
    journal = journal_path(state_file)
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join([b'{"seq": "x"}\n', lines[0], b"\x00\x00\n", lines[1]]))
    with caplog.at_level(logging.WARNING, logger="bootstrapper.engine.state"):
        again = StateStore.load(state_file, clock=FakeClock())
    assert again.state.steps["preflight[0]"].status == "done"
    assert "record 1 of the journal" in caplog.text and "record 3 of the journal" in caplog.text


def test_records_the_snapshot_already_holds_are_not_replayed(state_file: Path) -> None:
    """A crash between writing a snapshot and emptying the journal leaves older records behind."""
    store = _store(state_file)
    store.set_stage("preflight")
    store.mark_running("preflight[0]")
    stale = journal_path(state_file).read_bytes()
    store.set_stage("userland")
    store.mark_done("preflight[0]", 0)
    store.save()
    store.close()
    journal_path(state_file).write_bytes(stale)
    again = StateStore.load(state_file)
    assert again.state.phase == "userland"
    assert again.state.steps["preflight[0]"].status == "done"
    again.mark_running("userland[0]")
    assert [r["seq"] for r in _records(state_file)] == [5]


def test_the_journal_is_compacted_once_past_its_bound(
    state_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_module, "JOURNAL_MIN_BYTES", 2000)
    store = _store(state_file)
    sizes = []
    for round_ in range(30):
        for key in KEYS:
            store.mark_running(key.step_id)
            store.mark_failed(key.step_id, f"round {round_}", 1)
        sizes.append(journal_path(state_file).stat().st_size)
    bound = max(2000, state_module.JOURNAL_FACTOR * state_file.stat().st_size)
    assert max(sizes) < bound + 1000  # past the bound, the next change writes a snapshot instead
    assert min(sizes) < max(sizes)  # and so it was emptied on the way
    assert json.loads(state_file.read_text())["seq"] > 0
    again = StateStore.load(state_file)
    assert again.state == store.state
    assert {s.reason for s in again.state.steps.values()} == {"round 29"}
    assert all(s.attempts == 30 for s in again.state.steps.values())


def test_a_corrupt_snapshot_resumes_from_the_last_good_copy_and_the_journal(
    state_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(state_file)
    store.mark_running("preflight[0]")
    store.mark_done("preflight[0]", 0)  # only in the journal
    store.mark_running("userland[0]")
    store.close()
    state_file.write_bytes(b'{"version": 1, "steps": [')
    with caplog.at_level(logging.WARNING, logger="bootstrapper.engine.state"):
        again = StateStore.load(state_file, clock=FakeClock())
    assert "resuming from the last good copy" in caplog.text
    assert again.state.steps["preflight[0]"].status == "done"
    assert again.state.steps["userland[0]"].status == "running"
    assert again.state.run_id == "run-1"

    again.begin_attempt("run-2", "m.yaml")  # the first save writes a snapshot in place of the bad one
    assert read_state(state_file).steps["preflight[0]"].status == "done"
    assert journal_path(state_file).read_bytes() == b""


def test_a_last_good_copy_older_than_the_snapshot_still_gets_the_journal(state_file: Path) -> None:
    """A crash after a snapshot was written and before its copy was: the journal was not emptied yet."""
    store = _store(state_file)
    older = last_good_path(state_file).read_bytes()
    store.mark_running("preflight[0]")
    store.mark_done("preflight[0]", 0)
    journal = journal_path(state_file).read_bytes()
    store.save()
    store.close()
    last_good_path(state_file).write_bytes(older)
    journal_path(state_file).write_bytes(journal)
    state_file.write_bytes(b"garbage")  # and then the new snapshot went bad
    assert StateStore.load(state_file, clock=FakeClock()).state.steps["preflight[0]"].status == "done"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a second uid to own the planted file")
def test_a_journal_planted_as_a_link_or_someone_elses_file_is_refused(state_file: Path) -> None:
    store = _store(state_file)
    store.close()
    journal = journal_path(state_file)
    target = state_file.parent / "elsewhere"
    target.write_bytes(b"")
    journal.unlink(missing_ok=True)
    journal.symlink_to(target)
    with pytest.raises(StateError, match=r"cannot save the state file .*state\.json"):
        store.mark_running("preflight[0]")
    assert target.read_bytes() == b""
    journal.unlink()
    os.link(target, journal)
    with pytest.raises(StateError, match="2 links\\); remove it and run again"):
        store.mark_running("preflight[0]")
    journal.unlink()
    journal.write_bytes(b"")
    os.chown(journal, 501, 501)
    with pytest.raises(StateError, match="uid 501"):
        store.mark_running("preflight[0]")
    journal.unlink()
    store.mark_running("preflight[0]")
    assert read_state(state_file).steps["preflight[0]"].status == "running"


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


_SLOW = """
if [ -e "$BOOTSTRAPPER_ROOT/started" ]; then echo d >> "$BOOTSTRAPPER_ROOT/ran"; exit 0; fi
touch "$BOOTSTRAPPER_ROOT/started"
sleep 60
"""


def test_a_daemon_killed_mid_run_resumes_from_its_journal_without_running_finished_steps_again(
    site: Site, tmp_path: Path
) -> None:
    ran = 'echo {} >> "$BOOTSTRAPPER_ROOT/ran"'
    items = [
        {"name": n, "type": "rootscript", **site.script(f"{n}.sh", _SLOW if n == "d" else ran.format(n))}
        for n in "abcdef"
    ]
    url = site.manifest({"setupassistant": items})
    paths = Paths(root=tmp_path / "mac")
    daemon = subprocess.Popen(run_argv(url, paths.root), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (paths.root / "started").exists():
            assert daemon.poll() is None, daemon.stderr.read() if daemon.stderr else ""
            assert time.monotonic() < deadline, "step d never started"
            time.sleep(0.02)
        os.kill(daemon.pid, signal.SIGKILL)
    finally:
        daemon.kill()
        daemon.wait()
    # What was done since the run's snapshot is only in the journal, and it is what a reader sees.
    snapshot = json.loads(paths.state_file.read_text())
    assert {s["status"] for s in snapshot["steps"]} == {"pending"}
    assert [s.status for s in read_state(paths.state_file).steps.values()] == [
        *["done"] * 3,
        "running",
        *["pending"] * 2,
    ]

    again = subprocess.run(
        run_argv(url, paths.root), capture_output=True, text=True, timeout=120, check=False
    )
    assert again.returncode == 0, again.stderr
    assert (paths.root / "ran").read_text().split() == list("abcdef")
    done = json.loads(paths.result_file.read_text())  # the run removed itself, its state file with it
    assert (done["result"], done["attempt"]) == ("success", 2)
    assert {step["status"] for step in done["steps"]} == {"done"}
