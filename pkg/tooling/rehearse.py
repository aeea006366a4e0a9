"""Run the package scripts in a sandbox folder with fake `launchctl`, `scutil` and `chown`.

The scripts read BOOTSTRAPPER_TEST_ROOT / _LAUNCHCTL / _SCUTIL / _CHOWN (test hooks that default to
the real paths), so the same bytes that ship are the bytes rehearsed here. The fakes record their
calls and answer with the exit codes recorded from real Macs (tests/support/fake_launchctl.py).
`rehearse_all` is what `make pkg-payload` runs; the tests use `Sandbox` directly for finer checks.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bootstrapper.deploy.layout import folders, real_paths
from bootstrapper.process import run_sync
from pkg.tooling.payload import Payload

SCRIPT_TIMEOUT = 60.0
TOOLS = ("launchctl", "scutil", "chown")
#: Recorded `scutil show State:/Users/ConsoleUser` outputs in tests/data/macos/.
AT_SETUP = "scutil-consoleuser-loginwindow-partial.txt"
LOGGED_IN = "scutil-consoleuser-logged-in.txt"
LOGGED_IN_UID = "501"


@dataclass(frozen=True)
class Call:
    tool: str
    argv: list[str]
    rc: int


@dataclass(frozen=True)
class Outcome:
    returncode: int
    output: str
    calls: list[Call] = field(default_factory=list)

    @property
    def launchctl(self) -> list[list[str]]:
        return [c.argv for c in self.calls if c.tool == "launchctl"]


class Sandbox:
    """A simulated boot volume under `work/root`, with the fakes' state in `work/state`."""

    def __init__(self, work: Path, fake: Path, python: str = sys.executable) -> None:
        self.work = work
        self.root = work / "root"
        self.state = work / "state"
        self.bin = work / "bin"
        for folder in (self.root, self.state, self.bin):
            folder.mkdir(parents=True, exist_ok=True)
        for tool in TOOLS:
            wrapper = self.bin / tool
            wrapper.write_text(
                f'#!/bin/sh\nexec {shlex.quote(python)} -I -S {shlex.quote(str(fake))} {tool} "$@"\n',
                encoding="utf-8",
            )
            wrapper.chmod(0o755)

    def install(self, payload: Payload) -> None:
        """What `installer` does between preinstall and postinstall: lay the payload down."""
        shutil.copytree(payload.root, self.root, dirs_exist_ok=True)

    def preload(self, targets: Iterable[str]) -> None:
        (self.state / "loaded.json").write_text(json.dumps(sorted(targets)), encoding="utf-8")

    def loaded(self) -> set[str]:
        file = self.state / "loaded.json"
        return set(json.loads(file.read_text(encoding="utf-8"))) if file.exists() else set()

    def run(
        self, payload: Payload, script: str, *, target: str = "/", console: Path | None = None
    ) -> Outcome:
        """Run a script as the installer would (`$1` package, `$2` location, `$3` target volume)."""
        calls = self.state / "calls.jsonl"
        calls.unlink(missing_ok=True)
        env = {
            "BOOTSTRAPPER_TEST_ROOT": str(self.root),
            "FAKE_MACOS_DIR": str(self.state),
            "FAKE_CONSOLE_STATE": str(console or ""),
        } | {f"BOOTSTRAPPER_TEST_{tool.upper()}": str(self.bin / tool) for tool in TOOLS}
        package = str(payload.base / "bootstrapper.pkg")
        argv = ["/bin/sh", str(payload.scripts / script), package, "/", target, target]
        result = run_sync(argv, timeout=SCRIPT_TIMEOUT, env=env)
        recorded = []
        if calls.exists():
            for line in calls.read_text(encoding="utf-8").splitlines():
                doc = json.loads(line)
                recorded.append(Call(doc["tool"], doc["argv"], doc["rc"]))
        return Outcome(result.returncode, result.tail, recorded)


def rehearse_all(payload: Payload, work: Path, fake: Path, samples: Path) -> list[str]:
    """The install situations a fleet meets; returns what went wrong (empty when all is well)."""
    paths = real_paths()
    daemon = f"system/{paths.daemon_label}"
    agent = f"gui/{LOGGED_IN_UID}/{paths.agent_label}"
    problems: list[str] = []

    def expect(name: str, ok: bool, detail: str) -> None:
        if not ok:
            problems.append(f"{name}: {detail}")

    def both(
        name: str, console: str, target: str = "/", loaded: Iterable[str] = ()
    ) -> tuple[Sandbox, Outcome, Outcome]:
        box = Sandbox(work / re.sub(r"\W+", "-", name), fake)
        box.preload(loaded)
        pre = box.run(payload, "preinstall", target=target, console=samples / console)
        box.install(payload)
        post = box.run(payload, "postinstall", target=target, console=samples / console)
        for script, out in (("preinstall", pre), ("postinstall", post)):
            expect(name, out.returncode == 0, f"{script} exited {out.returncode}: {out.output.strip()}")
        return box, pre, post

    for name, target in (("fresh Mac in Setup Assistant", "/"), ("Data volume", "/System/Volumes/Data")):
        box, _, post = both(name, AT_SETUP, target)
        gui = [argv for argv in post.launchctl if any(a.startswith("gui/") for a in argv)]
        expect(name, box.loaded() == {daemon}, f"expected only the daemon loaded, got {sorted(box.loaded())}")
        expect(name, not gui, f"touched a gui domain: {gui}")
        for folder in folders():
            where = box.root.joinpath(*folder.path.parts[1:])
            mode = f"0{where.stat().st_mode & 0o777:o}" if where.is_dir() else "missing"
            expect(name, mode == folder.mode, f"{folder.path}: expected mode {folder.mode}, got {mode}")

    name = "upgrade with a user logged in"
    box, pre, post = both(name, LOGGED_IN, loaded=[daemon, agent])
    agent_plist = str(box.root) + str(paths.launch_agent_plist)
    stopped = [["bootout", daemon], ["bootout", agent]]
    started = ["bootstrap", f"gui/{LOGGED_IN_UID}", agent_plist]
    expect(name, pre.launchctl == stopped, f"preinstall ran {pre.launchctl}")
    expect(name, box.loaded() == {daemon, agent}, f"expected daemon and agent, got {sorted(box.loaded())}")
    expect(name, started in post.launchctl, f"the agent was not started: {post.launchctl}")

    name = "another volume"
    box, pre, post = both(name, LOGGED_IN, "/Volumes/Image")
    expect(name, not pre.launchctl and not post.launchctl, "called launchctl")
    expect(name, not (box.root / "var").exists(), "created folders")
    return problems
