"""Where the run is, on disk: what lets a daemon killed mid-run resume without redoing finished work.

Two files. `state.json` is a snapshot of the whole run, written atomically (`atomic.write_json_atomic`)
when the run starts, when the plan is adopted, when the run ends, and when the journal has grown past
its bound. `state.json.journal` holds every change since, one fsync'd JSON line each, appended: the
full new value of one step, or of the run-level fields that changed. So a step costs one small append
whatever the size of the manifest, where rewriting the whole file made a run quadratic in its items.
The state is the snapshot with the journal's records replayed over it; records carry a sequence
number, and those the snapshot already holds (a crash between a snapshot and the journal's truncation)
are skipped. A last line cut short (power lost mid-append) is ignored with a warning: that change was
never acknowledged. A step is `done` only once it succeeded; a step found `running` at load time was
interrupted and is run again.

A snapshot that cannot be read (truncated, not JSON, an unknown version) is never fatal: it is moved
aside with a clear log line and the run resumes from `state.json.prev`, the copy of the last snapshot,
with the journal replayed over it; only when that is unreadable too does the run start over. Starting
over is safe for packages (receipts keep them idempotent) but not for root scripts, which would run
twice. Crashing on it instead would make launchd restart us into the same crash forever.

Steps are matched by (name, fingerprint), not by position, so a manifest edited between two attempts
keeps the progress of the items that did not change.

Words: the stage being run is stored under the key `phase` (the file's shape since version 1; status
readers depend on it), so `RunState.phase` holds a stage name: preflight, setupassistant or userland.

`DaemonLock` stops a second daemon: `fcntl.flock` on the lock file, which the kernel releases when the
holder dies, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import stat
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeAlias, TypeVar, get_args

from bootstrapper.atomic import write_json_atomic
from bootstrapper.errors import LockedError, StateError
from bootstrapper.safefile import open_dir

log = logging.getLogger(__name__)

#: Bumped when the file's shape changes incompatibly; another version is set aside, not guessed at.
STATE_VERSION = 1

StepStatus: TypeAlias = Literal["pending", "running", "done", "failed", "skipped"]
RunResult: TypeAlias = Literal["success", "partial", "failed", "already-set-up"]
_STEP_STATUSES = frozenset(get_args(StepStatus))
_RUN_RESULTS = frozenset(get_args(RunResult))
_NOSPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
#: O_NONBLOCK: a FIFO planted in place of the journal must not hang us.
_JOURNAL_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC
_JOURNAL_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC

#: The journal is folded into a new snapshot once it holds this many bytes and also more than
#: `JOURNAL_FACTOR` times the last snapshot: a snapshot's cost (proportional to the manifest) is then
#: spread over as many appends as there are steps, so a step's share stays constant, and a load
#: replays at most a few times the snapshot's size.
JOURNAL_MIN_BYTES = 256 * 1024
JOURNAL_FACTOR = 4

Clock: TypeAlias = Callable[[], datetime]
_T = TypeVar("_T")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class StepKey:
    """How the plan names a step to the state: its id in this plan, and what identifies the item."""

    step_id: str
    name: str
    #: A digest of the item's definition (e.g. its sha256 and version): a changed item is a new step.
    fingerprint: str


@dataclass
class StepState:
    step_id: str
    name: str
    fingerprint: str
    status: StepStatus = "pending"
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    reason: str = ""
    #: Process groups the step started that may still run (`{"pgid": int, "started": str | None}`):
    #: what a daemon killed with SIGKILL left behind, reaped before the step runs again.
    groups: list[dict[str, Any]] = field(default_factory=list)

    @property
    def duration(self) -> float | None:
        """Seconds between start and finish, when both are known."""
        if self.started_at is None or self.finished_at is None:
            return None
        start = datetime.fromisoformat(self.started_at)
        end = datetime.fromisoformat(self.finished_at)
        return (end - start).total_seconds()


@dataclass
class RunState:
    run_id: str = ""
    source: str = ""
    created_at: str = ""
    updated_at: str = ""
    #: How many times a daemon started this run: bounds `on_failure: retry`.
    run_attempt: int = 0
    #: The stage being run (the persisted key predates the manifest's word).
    phase: str | None = None
    result: RunResult | None = None
    #: Whose session the user steps run in (`{"name", "uid", "gid", "home"}`): the first real user
    #: on the console when userland started, kept while others use the Mac (fast user switching).
    primary_user: dict[str, Any] | None = None
    #: The highest manifest signature serial this Mac accepted for a run: a lower one is a replay.
    accepted_serial: int | None = None
    #: In plan order (dicts keep insertion order, and so does the JSON).
    steps: dict[str, StepState] = field(default_factory=dict)
    #: Folders (Mac paths) the run's downloads will create outside our own: removed at the end if empty.
    created_folders: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["steps"] = [asdict(s) for s in self.steps.values()]
        return {"version": STATE_VERSION, **data}

    @classmethod
    def from_json(cls, data: Any) -> RunState:
        """Parse and validate; any deviation is a `StateError` (the caller sets the file aside)."""
        if not isinstance(data, dict):
            raise StateError("the top level is not a JSON object")
        version = data.get("version")
        if version != STATE_VERSION:
            raise StateError(f"unknown state version {version!r} (this program writes {STATE_VERSION})")
        try:
            steps: dict[str, StepState] = {}
            for raw in data["steps"]:
                step = StepState(**{f.name: raw[f.name] for f in fields(StepState) if f.name in raw})
                _check_step(step)
                steps[step.step_id] = step
            state = cls(
                run_id=_typed(data["run_id"], str),
                source=_typed(data.get("source", ""), str),
                created_at=_typed(data["created_at"], str),
                updated_at=_typed(data["updated_at"], str),
                run_attempt=_typed(data["run_attempt"], int),
                phase=data.get("phase"),
                result=data.get("result"),
                primary_user=data.get("primary_user"),
                accepted_serial=_optional(data.get("accepted_serial"), int),
                steps=steps,
                created_folders=[_typed(f, str) for f in _typed(data.get("created_folders", []), list)],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"malformed state: {type(exc).__name__}: {exc}") from None
        for name in ("phase", "primary_user", "result"):
            if not _RUN_CHECKS[name](getattr(state, name)):
                raise StateError(f"malformed state: {name} {getattr(state, name)!r}")
        return state


def _is_user(value: Any) -> bool:
    return value is None or (
        isinstance(value, dict)
        and isinstance(value.get("name"), str)
        and all(isinstance(value.get(k), int) and not isinstance(value.get(k), bool) for k in ("uid", "gid"))
        and isinstance(value.get("home"), str)
    )


#: The run-level fields a journal record may set, and what a valid value is.
_RUN_CHECKS: dict[str, Callable[[Any], bool]] = {
    "phase": lambda v: v is None or isinstance(v, str),
    "primary_user": _is_user,
    "result": lambda v: v is None or v in _RUN_RESULTS,
    "accepted_serial": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)),
    "created_folders": lambda v: isinstance(v, list) and all(isinstance(f, str) for f in v),
}


def _typed(value: Any, kind: type[_T]) -> _T:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"expected {kind.__name__}, got {value!r}")
    return value


def _optional(value: Any, kind: type[_T]) -> _T | None:
    return None if value is None else _typed(value, kind)


def accepted_serial(path: Path) -> int | None:
    """The highest signature serial a run on this Mac accepted; None when none (or no readable state).

    Read-only: an unreadable state file is set aside by `StateStore.load`, not here.
    """
    try:
        return read_state(path).accepted_serial
    except (OSError, StateError):
        return None


def _check_step(step: StepState) -> None:
    if step.status not in _STEP_STATUSES:
        raise ValueError(f"step {step.step_id!r}: unknown status {step.status!r}")
    for name in ("step_id", "name", "fingerprint", "reason"):
        _typed(getattr(step, name), str)
    _typed(step.attempts, int)
    if step.exit_code is not None:
        _typed(step.exit_code, int)
    for name in ("started_at", "finished_at"):
        value = getattr(step, name)
        if value is not None:
            datetime.fromisoformat(_typed(value, str))
    for group in _typed(step.groups, list):
        _typed(_typed(group, dict).get("pgid"), int)
        if group.get("started") is not None:
            _typed(group["started"], str)


def read_state(path: Path) -> RunState:
    """Read the state (snapshot and journal) without changing anything (for `bootstrapper status`).

    Raises `FileNotFoundError` when there is no snapshot and `StateError` when it is unreadable.
    """
    return _read_from(path, journal_path(path), logging.DEBUG).state


def journal_path(path: Path) -> Path:
    """Where the changes since the snapshot at `path` are appended: `state.json.journal`."""
    return path.with_name(path.name + ".journal")


@dataclass
class _Loaded:
    state: RunState
    #: The last sequence number the state holds (snapshot or journal).
    seq: int
    #: The snapshot's size in bytes.
    snapshot_bytes: int
    #: The journal's bytes up to its last whole line: what a writer keeps, the torn tail cut off.
    journal_bytes: int


def _read_from(path: Path, journal: Path, level: int = logging.WARNING) -> _Loaded:
    """The snapshot at `path` with `journal` replayed; oddities in the journal are logged at `level`.

    The journal is read first: a daemon compacting meanwhile only makes the snapshot newer, and its
    records that the snapshot already holds are skipped by sequence number.
    """
    changes = _read_journal(journal)
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        what = "empty" if not raw.strip() else f"not valid JSON ({exc})"
        raise StateError(f"the file is {what}") from None
    state = RunState.from_json(data)
    seq = data.get("seq", 0)
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise StateError(f"malformed state: seq {seq!r}")
    seq, kept = _replay(state, seq, changes, journal, level)
    return _Loaded(state, seq, len(raw), kept)


def _read_journal(path: Path) -> bytes:
    try:
        fd = os.open(path, _JOURNAL_READ)
    except FileNotFoundError:
        return b""
    except OSError as exc:
        raise StateError(
            f"cannot read the journal {path} ({exc.strerror}); remove it if it is a link"
        ) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StateError(f"the journal {path} is not a regular file; remove it")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _replay(state: RunState, seq: int, journal: bytes, where: Path, level: int) -> tuple[int, int]:
    """Apply the journal's records newer than `seq` to `state`; (last sequence number, bytes to keep).

    Each record holds whole values (a step, run-level fields), so one that cannot be read is skipped
    and the next change to the same step or field sets it right again.
    """
    lines = journal.split(b"\n")
    tail = lines.pop()
    newer = False
    if tail:
        log.log(
            level,
            "the journal %s ends in a torn record (%d bytes, cut off mid-write); ignored",
            where,
            len(tail),
        )
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = _record(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
            log.log(level, "record %d of the journal %s is unreadable (%s); skipped", number, where, exc)
            continue
        if record.seq <= seq:
            continue  # the snapshot already holds it
        seq, newer = record.seq, True
        state.updated_at = record.at
        if record.step is not None:
            state.steps[record.step.step_id] = record.step
        for name, value in record.run.items():
            setattr(state, name, value)
    # Only records of an interrupted compaction: the snapshot holds them all, the writer drops them.
    return seq, len(journal) - len(tail) if newer else 0


@dataclass
class _Record:
    seq: int
    at: str
    step: StepState | None
    run: dict[str, Any]


def _record(data: Any) -> _Record:
    """Parse one journal line; anything unexpected is a `ValueError`, `TypeError` or `KeyError`."""
    seq = _typed(_typed(data, dict)["seq"], int)
    at = _typed(data["at"], str)
    datetime.fromisoformat(at)
    step = None
    if "step" in data:
        raw = _typed(data["step"], dict)
        step = StepState(**{f.name: raw[f.name] for f in fields(StepState) if f.name in raw})
        _check_step(step)
    run = _typed(data.get("run", {}), dict)
    for name, value in run.items():
        if name not in _RUN_CHECKS or not _RUN_CHECKS[name](value):
            raise ValueError(f"run field {name} = {value!r}")
    return _Record(seq, at, step, run)


class StateStore:
    """The run's state and the only writer of its files: every change is persisted before it returns.

    Run boundaries and plan changes write a snapshot; every other change is one appended record.
    """

    def __init__(self, path: Path, state: RunState, *, clock: Clock = _utcnow) -> None:
        self.path = path
        self.state = state
        self._clock = clock
        self._counted = False
        self._seq = 0
        #: Size of the snapshot on disk; None when there is none usable (the next save writes one).
        self._snapshot_bytes: int | None = None
        #: Bytes of the journal that hold whole records (a torn tail beyond them is cut at open).
        self._journal_bytes = 0
        self._fd: int | None = None

    @classmethod
    def load(cls, path: Path, *, clock: Clock = _utcnow) -> StateStore:
        """Resume from `path`, or start fresh when it is missing or unreadable (set aside, logged)."""
        loaded: _Loaded | None = None
        try:
            loaded = _read_from(path, journal_path(path))
        except FileNotFoundError:
            state = RunState()
        except (StateError, OSError) as exc:
            aside = _set_aside(path, clock())
            where = f"moved it to {aside}" if aside else "could not move it aside; it will be overwritten"
            loaded = _last_good(path)
            state = loaded.state if loaded else RunState()
            then = "resuming from the last good copy" if state.run_id else "starting the run over"
            log.warning("state file %s is unreadable (%s); %s and %s", path, exc, where, then)
            if loaded is not None:
                loaded.snapshot_bytes = -1  # state.json is gone: the first save writes a snapshot
        else:
            state = loaded.state
        store = cls(path, state, clock=clock)
        if loaded is not None:
            store._seq = loaded.seq
            store._journal_bytes = loaded.journal_bytes
            store._snapshot_bytes = loaded.snapshot_bytes if loaded.snapshot_bytes >= 0 else None
        if not state.created_at:
            state.created_at = state.updated_at = _iso(clock())
        return store

    # --- run level ------------------------------------------------------------------------------

    def begin_attempt(self, run_id: str, source: str) -> int:
        """A daemon starts (or resumes) the run: count the attempt, forget a previous result."""
        st = self.state
        if not st.run_id:
            st.run_id = run_id
        st.source = source
        st.run_attempt += 1
        st.result = None
        self._counted = True
        self.save()
        return st.run_attempt

    def count_attempt(self, source: str) -> int:
        """Count this daemon's attempt if the run failed before it began one (an invalid manifest).

        Such a start counts toward `max_attempts` too, or launchd would restart it forever.
        """
        if self._counted:
            return self.state.run_attempt
        return self.begin_attempt(uuid.uuid4().hex[:12], source)

    def accept_serial(self, serial: int | None) -> None:
        """A run of a manifest signed with `serial` started: never accept a lower one again."""
        if serial is not None and serial > (self.state.accepted_serial or 0):
            self.state.accepted_serial = serial
            self._append(run={"accepted_serial": serial})

    def attempts_exhausted(self, limit: int) -> bool:
        """True once `limit` daemon attempts have started: `on_failure: retry` must give up."""
        return self.state.run_attempt >= limit

    def set_stage(self, stage: str) -> None:
        self.state.phase = stage
        self._append(run={"phase": stage})

    def set_primary_user(self, name: str, uid: int, gid: int, home: str) -> None:
        self.state.primary_user = {"name": name, "uid": uid, "gid": gid, "home": home}
        self._append(run={"primary_user": dict(self.state.primary_user)})

    def note_folders(self, folders: Iterable[str]) -> None:
        """Remember folders this run is about to create (kept across attempts, never forgotten)."""
        new = [f for f in folders if f not in self.state.created_folders]
        if new:
            self.state.created_folders.extend(new)
            self._append(run={"created_folders": list(self.state.created_folders)})

    def set_result(self, result: RunResult) -> None:
        """The run ended: a snapshot, so the journal is folded away and its file closed."""
        self.state.result = result
        self.save()
        self.close()

    def reconcile(self, keys: Iterable[StepKey]) -> None:
        """Adopt a (possibly changed) plan: keep the progress of steps whose name and fingerprint match.

        A step that was `running` when the last daemon died is set back to `pending` (attempts kept,
        so the scheduler can bound repeats); steps no longer in the plan are dropped.
        """
        old: dict[tuple[str, str], list[StepState]] = {}
        for step in self.state.steps.values():
            old.setdefault((step.name, step.fingerprint), []).append(step)
        steps: dict[str, StepState] = {}
        for key in keys:
            if key.step_id in steps:
                raise ValueError(f"duplicate step id {key.step_id!r} in the plan")
            matches = old.get((key.name, key.fingerprint))
            if matches:
                step = matches.pop(0)
                step.step_id = key.step_id
                if step.status == "running":
                    log.warning("step %s (%r) was interrupted; it will run again", key.step_id, key.name)
                    step.status = "pending"
                    step.reason = "interrupted: the daemon stopped while it ran"
            else:
                step = StepState(key.step_id, key.name, key.fingerprint)
            steps[key.step_id] = step
        self.state.steps = steps
        self.save()

    # --- step level -----------------------------------------------------------------------------

    def step(self, step_id: str) -> StepState:
        try:
            return self.state.steps[step_id]
        except KeyError:
            raise KeyError(f"no step {step_id!r} in the state; reconcile() with the plan first") from None

    def mark_running(self, step_id: str) -> None:
        step = self.step(step_id)
        step.status = "running"
        step.attempts += 1
        step.started_at = _iso(self._clock())
        step.finished_at = None
        step.exit_code = None
        step.reason = ""
        self._append(step=step)

    def mark_done(self, step_id: str, exit_code: int | None = None) -> None:
        """Call only after the step succeeded: `done` is what a resumed run skips."""
        self._finish(step_id, "done", "", exit_code)

    def mark_failed(self, step_id: str, reason: str, exit_code: int | None = None) -> None:
        self._finish(step_id, "failed", reason, exit_code)

    def mark_skipped(self, step_id: str, reason: str) -> None:
        self._finish(step_id, "skipped", reason, None)

    def add_group(self, step_id: str, pgid: int, started: str | None) -> None:
        """A process group of the step runs: recorded before it can outlive this daemon."""
        step = self.step(step_id)
        step.groups.append({"pgid": pgid, "started": started})
        self._append(step=step)

    def drop_group(self, step_id: str, pgid: int) -> None:
        """The group ended (or was killed): nothing of it is left to reap."""
        step = self.state.steps.get(step_id)
        if step is not None:
            step.groups = [g for g in step.groups if g["pgid"] != pgid]
            self._append(step=step)

    def leftover_groups(self) -> list[tuple[str, int, str | None]]:
        """(step id, pgid, start time) of every group a previous daemon may have left running."""
        return [
            (step.step_id, g["pgid"], g.get("started"))
            for step in self.state.steps.values()
            for g in step.groups
        ]

    def record_exit(self, step_id: str, exit_code: int | None, reason: str) -> None:
        """A background (`donotwait`) script of a finished step ended: keep how."""
        step = self.state.steps.get(step_id)
        if step is not None:
            step.exit_code = exit_code
            step.reason = reason
            self._append(step=step)

    def _finish(self, step_id: str, status: StepStatus, reason: str, exit_code: int | None) -> None:
        step = self.step(step_id)
        step.status = status
        step.reason = reason
        step.exit_code = exit_code
        step.finished_at = _iso(self._clock())
        self._append(step=step)

    # --- the files ------------------------------------------------------------------------------

    def save(self) -> None:
        """Write a snapshot of the whole state, then the last good copy, then empty the journal.

        A write that fails (a full disk) is a `StateError`; the files on disk then still give the
        state before this change.
        """
        self.state.updated_at = _iso(self._clock())
        doc = {**self.state.to_json(), "seq": self._seq}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.path, doc)
            write_json_atomic(last_good_path(self.path), doc)
            self._snapshot_bytes = self.path.stat().st_size
            self._truncate_journal()
        except OSError as exc:
            raise self._unsaved(exc) from exc

    def close(self) -> None:
        """Close the journal (a later change opens it again)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def _append(self, *, step: StepState | None = None, run: dict[str, Any] | None = None) -> None:
        """Persist one change as one fsync'd journal line; a snapshot instead when one is due.

        On a failed write the journal is cut back to its last whole record, so a change reported as
        not saved is not replayed either.
        """
        if self._snapshot_bytes is None or self._journal_bytes >= max(
            JOURNAL_MIN_BYTES, JOURNAL_FACTOR * self._snapshot_bytes
        ):
            self.save()
            return
        at = _iso(self._clock())
        self.state.updated_at = at
        record: dict[str, Any] = {"seq": self._seq + 1, "at": at}
        if step is not None:
            record["step"] = _step_json(step)
        if run is not None:
            record["run"] = run
        line = (
            json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n"
        ).encode()
        try:
            fd = self._journal()
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, self._journal_bytes)
                raise
        except OSError as exc:
            raise self._unsaved(exc) from exc
        self._seq += 1
        self._journal_bytes += len(line)

    def _journal(self) -> int:
        """The journal, open for appending, a torn record a crash left at its end cut off."""
        if self._fd is None:
            self._fd = _open_journal(journal_path(self.path), self._journal_bytes)
        return self._fd

    def _truncate_journal(self) -> None:
        """After a snapshot: its records are all in the snapshot (and would be skipped anyway)."""
        if self._fd is None and not journal_path(self.path).exists():
            self._journal_bytes = 0
            return
        self._journal_bytes = 0
        fd = self._journal()
        os.ftruncate(fd, 0)
        os.fsync(fd)

    def _unsaved(self, exc: OSError) -> StateError:
        fix = "free some space on that disk" if exc.errno in _NOSPACE else "check that folder"
        return StateError(f"cannot save the state file {self.path}: {exc.strerror or exc}; {fix}")


def _open_journal(where: Path, keep: int) -> int:
    """`where` for appending, created 0600, cut to `keep` bytes; only ever a plain file of ours.

    Its folder is reached with `open_dir` (no link or folder another user planted on the way), the
    file with O_NOFOLLOW, and one with another owner or a second name (a hard link) is refused.
    """
    dfd = open_dir(where.parent)
    try:
        fd = os.open(where.name, _JOURNAL_APPEND, 0o600, dir_fd=dfd)
    finally:
        os.close(dfd)
    try:
        info = os.fstat(fd)
        _check_journal(where, info)
        os.fchmod(fd, 0o600)
        if info.st_size != keep:
            os.ftruncate(fd, keep)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_journal(where: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_nlink != 1:
        raise StateError(
            f"the journal {where} is not a plain file of ours (uid {info.st_uid}, "
            f"{info.st_nlink} links); remove it and run again"
        )


def _step_json(step: StepState) -> dict[str, Any]:
    """A step as the journal holds it (`asdict` without its deep copy: this runs on every change)."""
    return {
        "step_id": step.step_id,
        "name": step.name,
        "fingerprint": step.fingerprint,
        "status": step.status,
        "attempts": step.attempts,
        "started_at": step.started_at,
        "finished_at": step.finished_at,
        "exit_code": step.exit_code,
        "reason": step.reason,
        "groups": [dict(g) for g in step.groups],
    }


def last_good_path(path: Path) -> Path:
    """Where the copy of the last snapshot is kept: `state.json.prev`."""
    return path.with_name(path.name + ".prev")


def _last_good(path: Path) -> _Loaded | None:
    """The last good copy with the journal replayed over it; None when it is missing or unreadable."""
    prev = last_good_path(path)
    try:
        return _read_from(prev, journal_path(path))
    except (StateError, OSError) as exc:
        if not isinstance(exc, FileNotFoundError):
            log.warning("the last good copy %s is unreadable too (%s)", prev, exc)
        return None


def _set_aside(path: Path, now: datetime) -> Path | None:
    """Rename an unreadable state file to `state.json.corrupt-<UTC time>` for a post-mortem."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    for n in range(100):
        aside = path.with_name(f"{path.name}.corrupt-{stamp}" + (f".{n}" if n else ""))
        if aside.exists():
            continue
        try:
            os.replace(path, aside)
        except OSError:
            break
        return aside
    with contextlib.suppress(OSError):
        path.unlink()
    return None


class DaemonLock:
    """An exclusive, non-blocking lock: one daemon per machine (or per sandbox).

    The holder's pid is written into the lock file so the second daemon's error names it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> DaemonLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:  # never through a link: root would create or lock whatever it points at
            fd = os.open(
                self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600
            )
        except OSError as exc:
            raise StateError(
                f"cannot open the lock file {self.path} ({exc.strerror}); remove it if it is a link"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            who = f"pid {holder}" if holder else "another process"
            raise LockedError(
                f"another bootstrapper daemon ({who}) is running: it holds {self.path}; "
                "wait for it to finish, or stop it first"
            ) from None
        with contextlib.suppress(
            OSError
        ):  # the pid only names us to a second daemon: a full disk may refuse it
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Unlock; the file stays (removing it would let two processes lock two different files)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> DaemonLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def lock_holder(path: Path) -> int | None:
    """The pid of the daemon that holds the lock at `path` and is alive, or None; read-only.

    Only the pid written by `acquire` is read (a test-lock would make a daemon starting at that very
    moment fail), and it counts only while that process exists.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        pid = _read_pid(fd)
    finally:
        os.close(fd)
    if pid is None:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
