"""`bootstrapper pkg info` names the signer's team, the value a `team_id` takes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PKGS = Path(__file__).resolve().parents[1] / "data" / "pkgs"


def _info(*args: str) -> str:
    argv = [sys.executable, "-m", "bootstrapper", "pkg", "info", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def test_pkg_info_shows_the_team() -> None:
    out = _info(str(PKGS / "installomator-10.3-signed.pkg"))
    assert "team:          JME5BW3F3R (use as team_id; the chain is checked at install)" in out.splitlines()
    assert "team:" not in _info(str(PKGS / "munkitools_launchd-3.0.3265.pkg"))


def test_pkg_info_json_has_the_team() -> None:
    data = json.loads(_info("--json", str(PKGS / "installomator-10.3-signed.pkg")))
    assert data["team"] == "JME5BW3F3R"
