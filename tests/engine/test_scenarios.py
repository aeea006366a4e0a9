"""The lifecycle an admin meets, on a booted simulated Mac: each scenario is a real process tree that
the sandbox's launchd starts from the plists `bootstrapper sandbox install` really installs.

The tests drive it as an admin would (`sandbox install`, `boot`, `login`, `logout`, `reboot`) and look
only from outside: `sandbox ps`, the launchd journal, the result file, the files scripts leave, /proc.
As root (CI), user agents run as uid 501 from a runtime every uid can run, as on a Mac; otherwise
everything runs as the caller.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrapper.paths import PACKAGE_ID
from tests.support import runtime as runtime_builder
from tests.support.booted import Mac, booted_mac
from tests.support.site import Site

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="looks for processes in /proc"),
]

DAEMON = "system/org.bootstrapper.daemon"
AS_ROOT = os.geteuid() == 0
#: alice's uid inside the sandbox, and the uid her processes really get (the caller's without root).
ALICE = 501
ALICE_RUNS_AS = ALICE if AS_ROOT else os.getuid()


def agent(uid: int = ALICE) -> str:
    return f"gui/{uid}/org.bootstrapper.agent"


@pytest.fixture(scope="session")
def runtime() -> Iterator[str]:
    """The Python the sandbox's launcher runs. As root it is a world-readable copy (what a Mac
    installs under /Library), since this interpreter may sit where uid 501 cannot run it."""
    if not AS_ROOT:
        yield sys.executable
        return
    folder = Path(tempfile.mkdtemp(prefix="bootstrapper-runtime-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        yield str(runtime_builder.build(folder / "python"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def mac(runtime: str) -> Iterator[Mac]:
    with booted_mac(runtime) as box:
        yield box


def home(mac: Mac) -> Path:
    """alice's home as her agent knows it: `Users/alice`, or the caller's name without root."""
    if AS_ROOT:
        return mac.root / "Users/alice"
    import pwd

    return mac.root / "Users" / pwd.getpwuid(os.getuid()).pw_name


def nothing_of_ours_is_left(mac: Mac) -> None:
    mac.wait_for(lambda: not mac.ps()["jobs"], "self-removal to boot out every job")
    mac.wait_for(lambda: not mac.processes(), "every process of ours to end", timeout=15)
    paths = mac.paths
    for path in (paths.launch_daemon_plist, paths.launch_agent_plist, paths.install_dir, paths.run_dir):
        assert not path.exists(), f"{path} outlived self-removal"
    assert not (paths.receipts_dir / f"{PACKAGE_ID}.plist").exists(), "our receipt outlived self-removal"


# --- 1. the whole deployment path --------------------------------------------------------------------


def test_the_deployment_path_from_install_to_self_removal_leaves_nothing_of_ours(
    mac: Mac, site: Site
) -> None:
    url = site.manifest(
        {
            "setupassistant": [
                {
                    "name": "root step",
                    "type": "rootscript",
                    **site.script("root.sh", 'id -u > "$BOOTSTRAPPER_ROOT/root-step"'),
                }
            ],
            "userland": [
                {
                    "name": "user step",
                    "type": "userscript",
                    **site.script("user.sh", 'echo "$(id -u) $HOME" > "$HOME/user-step"'),
                }
            ],
        }
    )
    mac.install(url)
    mac.boot()
    root_step = mac.root / "root-step"
    mac.wait_for(root_step.exists, "the root step, before anyone logs in")
    assert root_step.read_text() == f"{os.getuid()}\n"
    assert mac.job(agent()) is None, "no agent before a login"
    mac.sandbox("login", "alice")
    done = home(mac) / "user-step"
    mac.wait_for(done.exists, "alice's user step")
    assert done.read_text() == f"{ALICE_RUNS_AS} {home(mac)}\n"
    nothing_of_ours_is_left(mac)
    result = mac.result()
    assert result["result"] == "success", result
    assert [s["status"] for s in result["steps"]] == ["done", "done"]
    # launchd started the agent at the login (once), and self-removal booted it out, daemon last.
    assert mac.spawns(agent()) == 1
    ops = [(e["op"], e.get("target")) for e in mac.journal() if e["op"] == "bootout"]
    assert ops[-2:] == [("bootout", agent()), ("bootout", DAEMON)]
    # What an admin sees: no job of ours.
    shown = subprocess.run(
        [sys.executable, "-m", "bootstrapper", "sandbox", "ps", str(mac.root), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(shown.stdout)["jobs"] == []


def test_sandbox_install_refuses_a_runtime_that_cannot_run_bootstrapper(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bootstrapper.cli import main as cli

    folder = tmp_path / "mac"
    base = ["sandbox", "install", str(folder), "--manifest", "https://example.com/m.yaml"]
    assert cli([*base, "--runtime", str(tmp_path / "nope")]) == 2
    assert "--runtime" in capsys.readouterr().err
    bare = tmp_path / "python3"  # a Python without bootstrapper: the import fails
    bare.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'bootstrapper'\" >&2; exit 1\n")
    bare.chmod(0o755)
    assert cli([*base, "--runtime", str(bare)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot import bootstrapper" in err, err
    assert not (folder / ".sandbox/runtime").exists()
