from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from bootstrapper import process
from bootstrapper.errors import CommandError


def test_exit_code_and_output_come_back() -> None:
    result = process.run_sync(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10)
    assert result.returncode == 3
    assert "out" in result.tail and "err" in result.tail
    assert not result.ok
    with pytest.raises(CommandError, match=r"sh exited with 3: err"):
        result.check()


def test_environment_is_cleaned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://evil.example:8080")
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    result = process.run_sync(["env"], timeout=10, env={"HOME": "/tmp"})
    assert "HTTPS_PROXY" not in result.tail
    assert "hunter2" not in result.tail
    assert "HOME=/tmp" in result.tail
    assert f"PATH={process.SAFE_PATH}" in result.tail


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {pidfile}; wait"
    started = time.monotonic()
    result = process.run_sync(["sh", "-c", script], timeout=0.5)
    assert result.timed_out
    assert time.monotonic() - started < process.KILL_GRACE + 3
    assert _gone(int(pidfile.read_text()))
    with pytest.raises(CommandError, match="timed out"):
        result.check()


def test_output_is_capped_to_its_tail() -> None:
    result = process.run_sync(
        ["sh", "-c", "i=0; while [ $i -lt 5000 ]; do echo line$i; i=$((i+1)); done"],
        timeout=10,
        tail_bytes=1024,
    )
    assert len(result.tail.encode()) <= 1024
    assert result.tail.rstrip().endswith("line4999")


def test_stdout_and_stderr_are_kept_apart() -> None:
    result = process.run_sync(["sh", "-c", "echo out1; echo err1 >&2; echo out2; echo err2 >&2"], timeout=10)
    assert result.stdout == "out1\nout2\n"
    assert result.stderr == "err1\nerr2\n"


def test_each_stream_keeps_its_last_bytes_with_a_note_when_cut() -> None:
    # 3 MiB on stdout, a few lines on stderr: stdout keeps its last 256 KiB, stderr everything.
    script = "head -c 3145728 /dev/zero | tr '\\0' x; echo; echo the-end; echo why >&2"
    result = process.run_sync(["sh", "-c", script], timeout=30)
    note, _, kept = result.stdout.partition("\n")
    assert note == "[… 2.8 MiB cut: only the last 256.0 KiB are kept]"
    assert len(kept.encode()) == process.TAIL_BYTES
    assert kept.endswith("xxx\nthe-end\n")
    assert result.stderr == "why\n"
    assert len(result.tail.encode()) <= process.MERGED_TAIL_BYTES


def test_a_failure_message_ends_with_the_last_line_of_stderr() -> None:
    result = process.run_sync(["sh", "-c", "echo why >&2; echo chatter; exit 4"], timeout=10)
    with pytest.raises(CommandError, match=r"sh exited with 4: why$"):
        result.check()


def test_lines_are_streamed_as_they_come() -> None:
    lines: list[str] = []
    process.run_sync(["sh", "-c", "printf 'a\\nb\\r\\nc'"], timeout=10, on_line=lines.append)
    assert lines == ["a", "b", "c"]


def test_a_missing_program_is_a_clear_error() -> None:
    with pytest.raises(CommandError, match="could not be started"):
        process.run_sync(["/nonexistent/tool"], timeout=5)


def test_a_background_child_holding_the_pipe_does_not_hang_the_call() -> None:
    started = time.monotonic()
    result = process.run_sync(["sh", "-c", "sleep 30 & echo done"], timeout=20)
    assert result.returncode == 0
    assert time.monotonic() - started < process.DRAIN_GRACE + 3


def test_cancellation_kills_the_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"

    async def scenario() -> None:
        task = asyncio.create_task(process.run(["sh", "-c", f"echo $$ > {pidfile}; sleep 60"], timeout=60))
        while not pidfile.exists() or not pidfile.read_text().strip():
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert _gone(int(pidfile.read_text()))


def test_cancellation_while_the_program_is_being_started_kills_its_group() -> None:
    """The program runs from the fork on; a cancellation before `run` has its handle must still kill
    the group, at once (asyncio alone would wait for the background `sleep` that holds the pipe)."""
    marker = f"{30 + os.getpid() % 1000 / 1000:.3f}"  # a `sleep` argument no other process has

    async def scenario() -> float:
        task = asyncio.create_task(process.run(["sh", "-c", f"sleep {marker} & wait"], timeout=60))
        await asyncio.sleep(0)  # the task forks the program, then waits for its pipes to connect
        task.cancel()
        started = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - started

    took = asyncio.run(scenario())
    assert took < process.KILL_GRACE + 2
    leftovers = [pid for pid in _pids_with_argv(["sleep", marker]) if not _gone(pid)]
    assert leftovers == []


def _pids_with_argv(argv: list[str]) -> list[int]:
    wanted = "\0".join(argv).encode() + b"\0"
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "cmdline").read_bytes() == wanted:
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def _gone(pid: int) -> bool:
    """Dead or a zombie: in a container nobody may reap an orphan, but it no longer runs."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return True
        time.sleep(0.02)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
