"""The program's one way to run another program.

argv lists only (never a shell), a cleaned environment, its own process group so that a timeout or a
cancellation kills the command *and* everything it started, output read as it comes (for progress)
and a result that carries what a failure message needs. stdout and stderr are kept apart, each capped
to its last `tail_bytes` (a script's whole story for the log, in bounded memory), with a note first
when the start was cut; `tail` is both streams as they came, shorter, for parsers and messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bootstrapper.errors import CommandError

SAFE_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"
#: How much of each stream (stdout, stderr) is kept: its last bytes.
TAIL_BYTES = 256 * 1024
#: How much of both streams together `Completed.tail` keeps.
MERGED_TAIL_BYTES = 16 * 1024
#: After SIGTERM, how long the group gets before SIGKILL.
KILL_GRACE = 3.0
#: After the command exits, how long we keep reading output that its children still write.
DRAIN_GRACE = 1.0
#: How long `reap_group` waits for a SIGKILLed group to be gone.
REAP_WAIT = 5.0


@dataclass(frozen=True)
class Group:
    """A command's process group as recorded before it may outlive us: its id (the leader's pid) and
    the leader's start time, so a later `reap_group` never kills a stranger that reused the pid."""

    pgid: int
    started: str | None


class Watcher(Protocol):
    """Told about every group `run` starts and ends in its context (see `watching`)."""

    def started(self, group: Group) -> None: ...

    def ended(self, group: Group) -> None: ...


_watcher: contextvars.ContextVar[Watcher | None] = contextvars.ContextVar("process_watcher", default=None)


@contextlib.contextmanager
def watching(watcher: Watcher) -> Iterator[None]:
    """Report the groups that `run` starts in this context (and in tasks created in it) to `watcher`.

    The scheduler records a step's groups in the state file through this, so that the run after a
    SIGKILL can kill what the dead daemon left running before it runs the step again.
    """
    token = _watcher.set(watcher)
    try:
        yield
    finally:
        _watcher.reset(token)


@dataclass(frozen=True)
class Completed:
    argv: list[str]
    returncode: int
    #: Both streams as they arrived (their order across the two pipes is approximate), last
    #: `MERGED_TAIL_BYTES` at most: what parsers and one-line messages read.
    tail: str
    duration: float
    timed_out: bool = False
    #: Each stream's last `tail_bytes`, after a `cut_note` line when its start was not kept.
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def check(self) -> Completed:
        # stderr's last line says why, when there is one; the merged tail's order is not reliable
        why = self.stderr if self.stderr.strip() else self.stdout or self.tail
        if self.timed_out:
            raise CommandError(self.argv, self.returncode, why, reason="timed out")
        if self.returncode != 0:
            raise CommandError(self.argv, self.returncode, why)
        return self


def cut_note(dropped: int, kept: int) -> str:
    """The line put before a stream whose first `dropped` bytes were not kept."""
    return f"[… {_size(dropped)} cut: only the last {_size(kept)} are kept]"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment: nothing from ours leaks (proxies, DYLD_*, PYTHON*, secrets)."""
    env = {"PATH": SAFE_PATH, "LANG": "en_US.UTF-8"}
    if extra:
        env.update(extra)
    return env


async def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    on_line: Callable[[str], None] | None = None,
    tail_bytes: int = TAIL_BYTES,
    on_start: Callable[[int], None] | None = None,
) -> Completed:
    """Run `argv` and return its result; never raises for a non-zero exit (see `Completed.check`).

    `on_start(pgid)` is called as soon as the program runs (it leads its own group, pgid = pid).
    Raises `CommandError` when the program cannot be started at all.
    """
    args = [os.fspath(a) for a in argv]
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    spawn = asyncio.ensure_future(
        loop.subprocess_exec(
            lambda: _Protocol(loop),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=clean_env(env),
            cwd=cwd,
            start_new_session=True,
        )
    )
    try:
        # Shielded: the program runs as soon as it is forked, before this await returns. A cancellation
        # here must still get hold of it to kill its group; asyncio's own clean-up would kill only the
        # leader and then wait for every pipe to close, i.e. for whatever the program started.
        transport, protocol = await asyncio.shield(spawn)
    except asyncio.CancelledError:
        with contextlib.suppress(OSError):
            transport, protocol = await spawn
            await _kill_group(asyncio.subprocess.Process(transport, protocol, loop), protocol)
            transport.close()
        raise
    except OSError as exc:
        raise CommandError(args, None, "", reason=f"could not be started: {exc.strerror or exc}") from exc
    proc = asyncio.subprocess.Process(transport, protocol, loop)
    watcher = _watcher.get()
    group = Group(proc.pid, start_time(proc.pid)) if watcher is not None else None
    try:
        if on_start is not None:
            on_start(proc.pid)
        if watcher is not None and group is not None:
            watcher.started(group)
        return await _supervise(args, proc, protocol, transport, started, timeout, on_line, tail_bytes)
    finally:
        if watcher is not None and group is not None:
            watcher.ended(group)


async def _supervise(
    args: list[str],
    proc: asyncio.subprocess.Process,
    protocol: _Protocol,
    transport: asyncio.SubprocessTransport,
    started: float,
    timeout: float,
    on_line: Callable[[str], None] | None,
    tail_bytes: int,
) -> Completed:
    """Wait for the program (killing its group on a timeout or a cancellation) and collect its output."""
    merged = _Tail(min(tail_bytes, MERGED_TAIL_BYTES))
    streams = (_Tail(tail_bytes, merged), _Tail(tail_bytes, merged))
    assert proc.stdout is not None and proc.stderr is not None
    # one task for both pipes: a task cancelled and left unawaited logs nothing (a bare gather would)
    reader = asyncio.create_task(_read_both(proc.stdout, proc.stderr, streams, on_line))
    timed_out = False
    try:
        try:
            await asyncio.wait_for(asyncio.shield(protocol.exited), timeout)
        except TimeoutError:
            timed_out = True
            await _kill_group(proc, protocol)
    except BaseException:
        await asyncio.shield(_kill_group(proc, protocol))
        reader.cancel()
        transport.close()
        raise
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(reader), DRAIN_GRACE)
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    _signal_group(proc.pid, signal.SIGKILL)  # children that outlived the command and hold the pipe
    transport.close()  # now, not in __del__ after the event loop has gone
    rc = proc.returncode if proc.returncode is not None else -9
    return Completed(
        args,
        rc,
        merged.text(noted=False),
        time.monotonic() - started,
        timed_out,
        streams[0].text(),
        streams[1].text(),
    )


class _Protocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Knows when the process exits even while its children still hold the output pipe open.

    (`Process.wait()` on Python 3.11 also waits for the pipes to close, so a postinstall that
    leaves a background job running would hang the caller.)
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=2**16, loop=loop)
        self.exited: asyncio.Future[None] = loop.create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


def run_sync(argv: Sequence[str | os.PathLike[str]], *, timeout: float, **kwargs: object) -> Completed:
    """`run` for code that is not inside the event loop (the CLI's one-shot commands)."""
    return asyncio.run(run(argv, timeout=timeout, **kwargs))  # type: ignore[arg-type]


class _Tail:
    """The last `cap` bytes of a stream, in a deque of chunks (memory stays bounded), and how many
    bytes came in all; a stream may also feed a shared `merged` tail."""

    def __init__(self, cap: int, merged: _Tail | None = None) -> None:
        self.cap = cap
        self.total = 0
        self._size = 0
        self._chunks: deque[bytes] = deque()
        self._merged = merged

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self._chunks.append(chunk)
        self._size += len(chunk)
        while len(self._chunks) > 1 and self._size - len(self._chunks[0]) >= self.cap:
            self._size -= len(self._chunks.popleft())
        if self._merged is not None:
            self._merged.add(chunk)

    def text(self, *, noted: bool = True) -> str:
        data = b"".join(self._chunks)[-self.cap :] if self.cap else b""
        text = data.decode("utf-8", "replace")
        dropped = self.total - len(data)
        if noted and dropped > 0:
            return f"{cut_note(dropped, len(data))}\n{text}"
        return text


async def _read_both(
    stdout: asyncio.StreamReader,
    stderr: asyncio.StreamReader,
    tails: tuple[_Tail, _Tail],
    on_line: Callable[[str], None] | None,
) -> None:
    await asyncio.gather(_read(stdout, tails[0], on_line), _read(stderr, tails[1], on_line))


async def _read(stream: asyncio.StreamReader, tail: _Tail, on_line: Callable[[str], None] | None) -> None:
    pending = b""
    while chunk := await stream.read(65536):
        tail.add(chunk)
        if on_line is not None:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                on_line(line.decode("utf-8", "replace").rstrip("\r"))
            pending = pending[-tail.cap :]
    if on_line is not None and pending:
        on_line(pending.decode("utf-8", "replace"))


def start_time(pid: int) -> str | None:
    """When process `pid` started, as the kernel tells it (None when it is gone or unknown)."""
    if sys.platform.startswith("linux"):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        return stat.rpartition(")")[2].split()[19]  # field 22, starttime in clock ticks
    try:
        out = subprocess.run(
            ["/bin/ps", "-o", "lstart=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            env=clean_env(),
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def group_alive(pgid: int) -> bool:
    """Whether a process other than a zombie is still in group `pgid`."""
    if sys.platform.startswith("linux"):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                fields = Path(entry.path, "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return True
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def reap_group(group: Group, *, wait: float = REAP_WAIT) -> bool:
    """SIGKILL what is left of a group a previous daemon or agent started, and wait until it is gone.

    A group whose leader's pid now belongs to a process started at another time is not ours: it is
    left alone. True when something was killed.
    """
    now = start_time(group.pgid)
    if now is not None and group.started is not None and now != group.started:
        return False
    if not group_alive(group.pgid):
        return False
    _signal_group(group.pgid, signal.SIGKILL)
    until = time.monotonic() + wait
    while group_alive(group.pgid) and time.monotonic() < until:  # noqa: ASYNC110 - no event for "gone"
        await asyncio.sleep(0.05)
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _kill_group(proc: asyncio.subprocess.Process, protocol: _Protocol) -> None:
    if protocol.exited.done():
        _signal_group(proc.pid, signal.SIGKILL)
        return
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(protocol.exited), KILL_GRACE)
    except TimeoutError:
        _signal_group(proc.pid, signal.SIGKILL)
        await asyncio.shield(protocol.exited)
    _signal_group(proc.pid, signal.SIGKILL)
