"""What scripts print is kept: both streams in bootstrapper.log after the step, a failed step's last
lines in result.json, secrets masked everywhere, and every script starts in the system's `/`."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootstrapper.paths import Paths
from tests.engine.conftest import result, run_sandbox
from tests.support.pkgwriter import build_component_pkg
from tests.support.site import Site

pytestmark = pytest.mark.slow

SECRET = "s3cr3t-out-5d17a0e2"


def _holding(paths: Paths, value: bytes) -> list[str]:
    return sorted(
        str(p.relative_to(paths.root))
        for p in paths.root.rglob("*")
        if p.is_file() and not p.is_symlink() and value in p.read_bytes()
    )


def test_every_scripts_output_is_logged_and_a_failures_tail_reported(site: Site, sandbox: Paths) -> None:
    loud = (
        "pwd >&2\n"
        "head -c 400000 /dev/zero | tr '\\0' y; echo\n"  # more than the 256 KiB kept of a stream
        'echo "stdout says $API_TOKEN"\n'
        'echo "stderr says $API_TOKEN" >&2\n'
        "echo 'why it broke' >&2\n"
        "exit 3"
    )
    url = site.manifest(
        {
            "setupassistant": [
                {
                    "name": "loud root",
                    "type": "rootscript",
                    "fail_policy": "failable",
                    "secrets": ["API_TOKEN"],
                    **site.script("loud.sh", loud),
                },
                {
                    "name": "background root",
                    "type": "rootscript",
                    "donotwait": True,
                    "fail_policy": "failable",
                    **site.script("bg.sh", "echo bg out; echo bg err >&2; exit 4"),
                },
            ],
            "userland": [
                {
                    "name": "user fails",
                    "type": "userscript",
                    "fail_policy": "failable",
                    **site.script("user.sh", "pwd; echo 'user err' >&2; exit 5"),
                },
                {"name": "user ok", "type": "userscript", **site.script("ok.sh", "echo all fine")},
                {
                    "name": "user background",
                    "type": "userscript",
                    "donotwait": True,
                    **site.script("ubg.sh", "echo ubg out; echo ubg err >&2"),
                },
            ],
        }
    )
    assert run_sandbox(sandbox, url, script_secrets={"API_TOKEN": SECRET}) == 0
    root = str(sandbox.root)
    log = sandbox.log_dir.joinpath("bootstrapper.log").read_text()
    lines = [line.split(" ", 1)[1].strip() for line in log.splitlines()]

    def printed(name: str, stream: str) -> list[str]:
        prefix = f"INFO    step '{name}' {stream}: "
        return [line.removeprefix(prefix) for line in lines if line.startswith(prefix)]

    # Both streams, apart, after the step; the start of a long stream is cut with a note.
    out = printed("loud root", "stdout")
    assert out[0].startswith("[… ") and out[0].endswith("cut: only the last 256.0 KiB are kept]")
    assert out[-1] == "stdout says ***"
    assert printed("loud root", "stderr") == [root, "stderr says ***", "why it broke"]
    assert printed("background root", "stdout") == ["bg out"]
    assert printed("background root", "stderr") == ["bg err"]
    # User scripts: the agent's reply carries both streams; they start in the (sandbox's) root too.
    assert printed("user fails", "stdout") == [root]
    assert printed("user fails", "stderr") == ["user err"]
    assert printed("user ok", "stdout") == ["all fine"]
    assert printed("user background", "stdout") == ["ubg out"]
    assert printed("user background", "stderr") == ["ubg err"]

    doc = result(sandbox)
    steps = {s["name"]: s for s in doc["steps"]}
    assert steps["loud root"]["reason"] == "exited with 3: why it broke"
    assert steps["loud root"]["output_tail"] == f"{root}\nstderr says ***\nwhy it broke"
    assert steps["user fails"]["output_tail"] == "user err"
    assert steps["background root"]["output_tail"] == "bg err"
    assert "output_tail" not in steps["user ok"]
    assert doc["result"] == "partial"
    # The secret the script printed is masked in every file the run wrote; only the settings hold it.
    assert _holding(sandbox, SECRET.encode()) == []


def test_a_failed_installs_output_is_logged_and_reported(site: Site, sandbox: Paths, tmp_path: Path) -> None:
    pkg = build_component_pkg(
        tmp_path / "bad.pkg",
        "com.example.bad",
        "1",
        {"a": b"a"},
        scripts={"postinstall": "#!/bin/sh\necho 'disk says no' >&2\nexit 3\n"},
    )
    pkg_url, digest = site.add("bad.pkg", pkg.read_bytes())
    item = {"name": "bad pkg", "type": "package", "url": pkg_url, "hash": digest, "required": True}
    url = site.manifest({"setupassistant": [{**item, "fail_policy": "failable"}]})
    assert run_sandbox(sandbox, url) == 0
    log = sandbox.log_dir.joinpath("bootstrapper.log").read_text()
    assert "INFO    step 'bad pkg' stdout: disk says no" in log
    step = result(sandbox)["steps"][0]
    assert step["status"] == "failed" and step["output_tail"] == "disk says no"
