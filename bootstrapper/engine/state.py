"""Where the run is, on disk: what lets a daemon killed mid-run resume without redoing finished work.

One versioned JSON file, rewritten atomically on every change (`atomic.write_json_atomic`), so after a
crash it holds either the state before or after the last change. A step is `done` only once it
succeeded; a step found `running` at load time was interrupted and is run again.

A state file that cannot be read (truncated, not JSON, an unknown version) is never fatal: it is moved
aside with a clear log line and the run resumes from `state.json.prev`, the last good copy written
after every successful save; only when that is unreadable too does the run start over. Starting over
is safe for packages (receipts keep them idempotent) but not for root scripts, which would run twice.
Crashing on it instead would make launchd restart us into the same crash forever.

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
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeAlias, TypeVar, get_args

from bootstrapper.atomic import write_json_atomic
from bootstrapper.errors import LockedError, StateError

log = logging.getLogger(__name__)

#: Bumped when the file's shape changes incompatibly; another version is set aside, not guessed at.
STATE_VERSION = 1

StepStatus: TypeAlias = Literal["pending", "running", "done", "failed", "skipped"]
RunResult: TypeAlias = Literal["success", "partial", "failed", "already-set-up"]
_STEP_STATUSES = frozenset(get_args(StepStatus))
_RUN_RESULTS = frozenset(get_args(RunResult))
_NOSPACE = frozenset({errno.ENOSPC, errno.EDQUOT})

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
        if state.phase is not None and not isinstance(state.phase, str):
            raise StateError(f"malformed state: phase {state.phase!r}")
        primary = state.primary_user
        if primary is not None and not (
            isinstance(primary, dict)
            and isinstance(primary.get("name"), str)
            and all(isinstance(primary.get(k), int) for k in ("uid", "gid"))
            and isinstance(primary.get("home"), str)
        ):
            raise StateError(f"malformed state: primary_user {primary!r}")
        if state.result is not None and state.result not in _RUN_RESULTS:
            raise StateError(f"malformed state: result {state.result!r}")
        return state


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
    """Read a state file without changing anything (for `bootstrapper status`).

    Raises `FileNotFoundError` when there is none and `StateError` when it is unreadable.
    """
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        what = "empty" if not raw.strip() else f"not valid JSON ({exc})"
        raise StateError(f"the file is {what}") from None
    return RunState.from_json(data)


class StateStore:
    """The run's state and the only writer of the state file: every change is persisted at once."""

    def __init__(self, path: Path, state: RunState, *, clock: Clock = _utcnow) -> None:
        self.path = path
        self.state = state
        self._clock = clock
        self._counted = False

    @classmethod
    def load(cls, path: Path, *, clock: Clock = _utcnow) -> StateStore:
        """Resume from `path`, or start fresh when it is missing or unreadable (set aside, logged)."""
        try:
            state = read_state(path)
        except FileNotFoundError:
            state = RunState()
        except (StateError, OSError) as exc:
            aside = _set_aside(path, clock())
            where = f"moved it to {aside}" if aside else "could not move it aside; it will be overwritten"
            state = _last_good(last_good_path(path))
            then = "resuming from the last good copy" if state.run_id else "starting the run over"
            log.warning("state file %s is unreadable (%s); %s and %s", path, exc, where, then)
        store = cls(path, state, clock=clock)
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
            self.save()

    def attempts_exhausted(self, limit: int) -> bool:
        """True once `limit` daemon attempts have started: `on_failure: retry` must give up."""
        return self.state.run_attempt >= limit

    def set_stage(self, stage: str) -> None:
        self.state.phase = stage
        self.save()

    def set_primary_user(self, name: str, uid: int, gid: int, home: str) -> None:
        self.state.primary_user = {"name": name, "uid": uid, "gid": gid, "home": home}
        self.save()

    def note_folders(self, folders: Iterable[str]) -> None:
        """Remember folders this run is about to create (kept across attempts, never forgotten)."""
        new = [f for f in folders if f not in self.state.created_folders]
        if new:
            self.state.created_folders.extend(new)
            self.save()

    def set_result(self, result: RunResult) -> None:
        self.state.result = result
        self.save()

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
        self.save()

    def mark_done(self, step_id: str, exit_code: int | None = None) -> None:
        """Call only after the step succeeded: `done` is what a resumed run skips."""
        self._finish(step_id, "done", "", exit_code)

    def mark_failed(self, step_id: str, reason: str, exit_code: int | None = None) -> None:
        self._finish(step_id, "failed", reason, exit_code)

    def mark_skipped(self, step_id: str, reason: str) -> None:
        self._finish(step_id, "skipped", reason, None)

    def add_group(self, step_id: str, pgid: int, started: str | None) -> None:
        """A process group of the step runs: recorded before it can outlive this daemon."""
        self.step(step_id).groups.append({"pgid": pgid, "started": started})
        self.save()

    def drop_group(self, step_id: str, pgid: int) -> None:
        """The group ended (or was killed): nothing of it is left to reap."""
        step = self.state.steps.get(step_id)
        if step is not None:
            step.groups = [g for g in step.groups if g["pgid"] != pgid]
            self.save()

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
            self.save()

    def _finish(self, step_id: str, status: StepStatus, reason: str, exit_code: int | None) -> None:
        step = self.step(step_id)
        step.status = status
        step.reason = reason
        step.exit_code = exit_code
        step.finished_at = _iso(self._clock())
        self.save()

    def save(self) -> None:
        """Persist the state, then the last good copy; a write that fails (a full disk) is a `StateError`."""
        self.state.updated_at = _iso(self._clock())
        doc = self.state.to_json()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.path, doc)
            write_json_atomic(last_good_path(self.path), doc)
        except OSError as exc:
            fix = "free some space on that disk" if exc.errno in _NOSPACE else "check that folder"
            raise StateError(f"cannot save the state file {self.path}: {exc.strerror or exc}; {fix}") from exc


def last_good_path(path: Path) -> Path:
    """Where the copy of the last state that was saved whole is kept: `state.json.prev`."""
    return path.with_name(path.name + ".prev")


def _last_good(prev: Path) -> RunState:
    """The last good copy, or a fresh state when it is missing or unreadable as well."""
    try:
        return read_state(prev)
    except (StateError, OSError) as exc:
        if not isinstance(exc, FileNotFoundError):
            log.warning("the last good copy %s is unreadable too (%s)", prev, exc)
        return RunState()


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
