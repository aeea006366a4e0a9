"""A simulated Mac driven as an admin drives it: `bootstrapper sandbox install`, `boot` as a real
process, `login`/`logout`/`reboot`, and looks from outside (`ps`, the journal, /proc).

The folder lives in a 0755 temporary folder, not under pytest's own (private to root), so that a
user's agent, really running as uid 501 when the tests run as root, can reach its home and socket.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from bootstrapper.cli import main as cli
from bootstrapper.paths import Paths
from bootstrapper.platform.sandbox.control import request
from bootstrapper.platform.sandbox.launchd import read_state, socket_path

T = TypeVar("T")


class Mac:
    """One simulated Mac at `<base>/mac`, booted by `sandbox boot` in a child process."""

    def __init__(self, base: Path, runtime: str) -> None:
        self.base = base
        self.root = base / "mac"
        self.root.mkdir(mode=0o755)
        self.paths = Paths(root=self.root)
        self.runtime = runtime
        self.boot_log = base / "boot.log"
        self.proc: subprocess.Popen[bytes] | None = None

    # --- what an admin types ------------------------------------------------------------------------

    def install(self, url: str) -> None:
        argv = ["sandbox", "install", str(self.root), "--manifest", url, "--allow-http"]
        assert cli([*argv, "--runtime", self.runtime]) == 0

    def boot(self) -> None:
        argv = [sys.executable, "-m", "bootstrapper", "sandbox", "boot", str(self.root)]
        with self.boot_log.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        self.wait_for(lambda: socket_path(self.root).exists(), "the sandbox to boot", timeout=20)

    def sandbox(self, *args: str) -> None:
        """`bootstrapper sandbox VERB ROOT ARGS…` (login, logout, switch, reboot, shutdown)."""
        verb, *rest = args
        assert cli(["sandbox", verb, str(self.root), *rest]) == 0, f"sandbox {' '.join(args)} failed"

    def shutdown(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=60)

    # --- looking --------------------------------------------------------------------------------------

    def ps(self) -> dict[str, Any]:
        reply = request(self.root, {"op": "ps"})
        assert reply.rc == 0, reply.err
        data: dict[str, Any] = json.loads(reply.out)
        return data

    def job(self, target: str) -> dict[str, Any] | None:
        return next((j for j in self.ps()["jobs"] if f"{j['domain']}/{j['label']}" == target), None)

    def pid(self, target: str) -> int | None:
        found = self.job(target)
        return found["pid"] if found else None

    def journal(self) -> list[dict[str, Any]]:
        file = self.paths.launchd_journal
        if not file.exists():
            return []
        return [json.loads(line) for line in file.read_text().splitlines()]

    def spawns(self, target: str) -> int:
        return sum(1 for e in self.journal() if e["op"] == "spawn" and e.get("target") == target)

    def result(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.paths.result_file.read_text())
        return data

    def processes(self) -> list[int]:
        """Processes of this Mac's software: anything whose argv or environment names its root
        (the daemon and agents run `… --sandbox ROOT`, scripts get BOOTSTRAPPER_ROOT), but not the
        simulated launchd itself, nor this test."""
        root = os.fsencode(str(self.root))
        mine = {os.getpid(), self.proc.pid if self.proc is not None else -1}
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in mine:
                continue
            with contextlib.suppress(OSError):
                if (entry / "stat").read_text().rpartition(")")[2].split()[0] == "Z":
                    continue
                cmdline = (entry / "cmdline").read_bytes()
                environ = b""
                with contextlib.suppress(OSError):
                    environ = (entry / "environ").read_bytes()
                if root in cmdline or b"BOOTSTRAPPER_ROOT=" + root in environ:
                    found.append(int(entry.name))
        return found

    def logs(self) -> str:
        """What to show when a scenario fails: the launchd's output and the daemon's logs."""
        parts = []
        for file in (
            self.boot_log,
            self.paths.log_dir / "launchd-daemon.log",
            self.paths.log_dir / "bootstrapper.log",
        ):
            with contextlib.suppress(OSError):
                parts.append(f"--- {file.name}\n{file.read_text()[-4000:]}")
        with contextlib.suppress(Exception):
            parts.append(f"--- sandbox ps\n{json.dumps(self.ps()['jobs'])}")
        for pid in self.processes():
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                parts.append(f"--- process {pid}: {argv}")
        return "\n".join(parts)

    def wait_for(self, check: Callable[[], T], what: str, timeout: float = 30.0) -> T:
        """Poll observable state until `check` is true; fail with the logs after `timeout` seconds."""
        until = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"the sandbox's launchd ended while waiting for {what}\n{self.logs()}")
            if time.monotonic() > until:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{self.logs()}")
            time.sleep(0.05)

    # --- cleaning up -----------------------------------------------------------------------------------

    def kill_leftovers(self) -> None:
        """Nothing a failed scenario started outlives it: every job's group and stray process."""
        with contextlib.suppress(Exception):
            for j in read_state(self.root)["jobs"].values():
                if j.get("pid"):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(j["pid"], signal.SIGKILL)
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def booted_mac(runtime: str) -> Iterator[Mac]:
    base = Path(tempfile.mkdtemp(prefix="bootstrapper-scenario-", dir="/tmp"))
    base.chmod(0o755)
    mac = Mac(base, runtime)
    try:
        yield mac
    finally:
        mac.shutdown()
        mac.kill_leftovers()
        shutil.rmtree(base, ignore_errors=True)
