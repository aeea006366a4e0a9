"""Secrets for scripts: the value reaches the script's environment and nowhere else, on disk or in
the run's output; what a script prints of it is masked."""

from __future__ import annotations

import json
import plistlib
import subprocess
import sys
from pathlib import Path

import pytest

from bootstrapper.paths import Paths
from tests.support.site import Site

pytestmark = pytest.mark.slow

ROOT_SECRET = "s3cr3t-root-7f2a9c41"
USER_SECRET = "s3cr3t-user-b81e55d0"


def _run(site_url: str, root: Path, secrets: dict[str, str]) -> subprocess.CompletedProcess[str]:
    paths = Paths(root=root)
    prefs = paths.managed_prefs
    prefs.parent.mkdir(parents=True, exist_ok=True)
    prefs.write_bytes(plistlib.dumps({"script_secrets": secrets, "agent_checkin_timeout": 30.0}))
    argv = [sys.executable, "-m", "bootstrapper", "run", "--manifest", site_url]
    argv += ["--sandbox", str(root), "--allow-http"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def _holding(folder: Path, value: bytes) -> list[str]:
    return sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and value in p.read_bytes()
    )


def test_secrets_reach_their_script_only_and_are_masked_everywhere(site: Site, tmp_path: Path) -> None:
    root = tmp_path / "mac"
    url = site.manifest(
        {
            "setupassistant": [
                {
                    "name": "root uses a token",
                    "type": "rootscript",
                    "secrets": ["API_TOKEN"],
                    **site.script(
                        "root.sh",
                        'test -z "$USER_TOKEN" || exit 4\necho "token is $API_TOKEN"',
                    ),
                },
                {
                    "name": "no secrets asked",
                    "type": "rootscript",
                    **site.script("plain.sh", 'test -z "$API_TOKEN" || exit 5\necho clean'),
                },
            ],
            "userland": [
                {
                    "name": "user uses a token",
                    "type": "userscript",
                    "secrets": ["USER_TOKEN"],
                    "secrets_to_user": True,
                    **site.script("user.sh", 'test -z "$API_TOKEN" || exit 6\necho "user has $USER_TOKEN"'),
                }
            ],
        }
    )
    done = _run(url, root, {"API_TOKEN": ROOT_SECRET, "USER_TOKEN": USER_SECRET})
    assert done.returncode == 0, done.stderr
    paths = Paths(root=root)
    events = [json.loads(line) for line in (paths.log_dir / "events.jsonl").read_text().splitlines()]
    said = {e["step_id"]: e["reason"] for e in events if e["event"] == "step_finished"}
    # Each script saw its own value (the mask replaced exactly it) and not the other's.
    assert said == {
        "setupassistant[0]": "token is ***",
        "setupassistant[1]": "clean",
        "userland[0]": "user has ***",
    }
    for value in (ROOT_SECRET, USER_SECRET):
        # The managed preferences the MDM installed hold it; nothing we wrote does.
        assert _holding(root, value.encode()) == [str(paths.managed_prefs.relative_to(root))]
        assert value not in done.stdout + done.stderr


def test_a_secret_the_settings_do_not_define_refuses_the_step(site: Site, tmp_path: Path) -> None:
    root = tmp_path / "mac"
    item = {
        "name": "needs a token",
        "type": "rootscript",
        "secrets": ["API_TOKEN", "MISSING_ONE"],
        "fail_policy": "failure_is_not_an_option",
        **site.script("t.sh", "touch $BOOTSTRAPPER_ROOT/ran"),
    }
    done = _run(site.manifest({"setupassistant": [item]}), root, {"API_TOKEN": ROOT_SECRET})
    assert done.returncode == 1
    step = json.loads(Paths(root=root).result_file.read_text())["steps"][0]
    assert step["reason"] == (
        "refused: secrets MISSING_ONE not defined in the script_secrets setting;"
        " add them to the MDM profile or remove them from the item"
    )
    assert not (root / "ran").exists()
