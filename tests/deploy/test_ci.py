"""The macOS workflow runs only real Makefile targets, and `make mac-smoke` fails when any of its
checks fails (its check functions, run here with fakes for launchctl and the files)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from bootstrapper.deploy.layout import template_values
from pkg.tooling.templates import render

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "macos.yml"
BEGIN = "# --- checks:"
END = "# --- end of checks ---"


def makefile_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"(?m)^([A-Za-z][\w.-]*)\s*:(?!=)", text))


def workflow_runs() -> list[str]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    return [step["run"] for job in doc["jobs"].values() for step in job["steps"] if "run" in step]


def test_every_make_target_the_workflow_runs_exists() -> None:
    used = {t for run in workflow_runs() for t in re.findall(r"\bmake\s+([A-Za-z][\w.-]*)", run)}
    assert {"test", "pkg", "mac-smoke"} <= used
    assert used <= makefile_targets(), f"not in the Makefile: {sorted(used - makefile_targets())}"


def test_the_workflow_covers_both_architectures() -> None:
    doc = yaml.safe_load(WORKFLOW.read_text())
    # Apple silicon and the last Intel image GitHub offers.
    assert set(doc["jobs"]["package"]["strategy"]["matrix"]["runner"]) == {"macos-15", "macos-15-intel"}


def test_every_action_is_pinned_by_commit() -> None:
    doc = yaml.safe_load(WORKFLOW.read_text())
    uses = [step["uses"] for job in doc["jobs"].values() for step in job["steps"] if "uses" in step]
    assert uses, "the workflow uses no action: this test would pass for nothing"
    for action in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), f"{action}: pin it by its 40-hex commit"


def test_the_smoke_script_stops_on_errors_and_exits_through_its_verdict() -> None:
    text = (REPO / "pkg" / "mac-smoke.sh.in").read_text()
    assert "\nset -eu\n" in text
    assert text.rstrip().endswith("verdict || exit 1\nexit 0")
    assert '/usr/sbin/installer -pkg "$PKG" -target /' in text


@pytest.fixture
def smoke(tmp_path: Path) -> dict[str, Path]:
    """The state a finished, self-removed run leaves, under tmp_path; a fake launchctl answering 113."""
    files = {
        name: tmp_path / name for name in ("marker", "result.json", "daemon.plist", "agent.plist", "install")
    }
    files["marker"].write_text("ran")
    files["result.json"].write_text("{}")
    launchctl = tmp_path / "launchctl"
    launchctl.write_text(f'#!/bin/sh\nexit "$(cat {tmp_path}/rc)"\n')
    launchctl.chmod(0o755)
    (tmp_path / "rc").write_text("113")
    files["launchctl"] = launchctl
    files["rc"] = tmp_path / "rc"
    return files


def run_checks(files: dict[str, Path]) -> subprocess.CompletedProcess[str]:
    text = render((REPO / "pkg" / "mac-smoke.sh.in").read_text(), template_values(), name="mac-smoke.sh.in")
    block = text[text.index(BEGIN) : text.index(END)]
    script = "\n".join(
        [
            "set -eu",
            f"MARKER='{files['marker']}'",
            f"RESULT='{files['result.json']}'",
            f"DAEMON_PLIST='{files['daemon.plist']}'",
            f"AGENT_PLIST='{files['agent.plist']}'",
            f"INSTALL_DIR='{files['install']}'",
            f"LAUNCHCTL='{files['launchctl']}'",
            "DAEMON=system/org.bootstrapper.daemon",
            block,
            "check_outcome",
            "verdict || exit 1",
            "exit 0",
        ]
    )
    return subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=False)


def test_a_clean_outcome_passes(smoke: dict[str, Path]) -> None:
    done = run_checks(smoke)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("mac-smoke: PASS")


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("no marker", "the manifest's root script did not run"),
        ("no result", "no completion record"),
        ("still loaded", "the daemon is still loaded (launchctl print exited 0)"),
        ("plist left", "daemon.plist was not removed"),
        ("install left", "install was not removed"),
    ],
)
def test_any_failed_check_fails_the_run(smoke: dict[str, Path], breakage: str, message: str) -> None:
    if breakage == "no marker":
        smoke["marker"].unlink()
    elif breakage == "no result":
        smoke["result.json"].unlink()
    elif breakage == "still loaded":
        smoke["rc"].write_text("0")
    elif breakage == "plist left":
        smoke["daemon.plist"].write_text("<plist/>")
    else:
        smoke["install"].mkdir()
    done = run_checks(smoke)
    assert done.returncode == 1
    assert "mac-smoke: FAIL:" in done.stderr and message in done.stderr
