"""`plan` says what the run will really do, refusals included, and its JSON carries what an admin checks."""

from __future__ import annotations

import asyncio
import json
import platform
from pathlib import Path

import pytest

from bootstrapper.cli import main
from bootstrapper.paths import Paths
from bootstrapper.platform.sandbox import SandboxPlatform

DATA = Path(__file__).resolve().parents[1] / "data" / "manifests"
ROOT = Path(__file__).resolve().parents[2]


def test_plan_shows_placeholder_hashes_as_refused(capsys: pytest.CaptureFixture[str]) -> None:
    path = DATA / "macadmins-installapplications-README-example.json"
    assert main(["plan", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    downloads = [s for s in doc["steps"] if s["url"] and s["action"] != "skip"]
    assert downloads and {s["action"] for s in downloads} == {"refused"}
    assert all("no sha256 hash" in s["reason"] for s in downloads)
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert "refused" in out and f"{len(downloads)} refused" in out


def test_plan_json_carries_url_file_and_hash(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(ROOT / "manifests" / "demo.yaml"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    pkg = next(s for s in doc["steps"] if s["type"] == "package")
    assert pkg["url"].endswith(".pkg") and len(pkg["hash"]) == 64
    assert {"stage", "file"} <= pkg.keys()
    assert "refused" not in {s["action"] for s in doc["steps"]}


def test_plan_json_redacts_query_tokens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "format: 1\nsetupassistant:\n  - name: s\n    type: rootscript\n"
        f"    url: https://example.com/s.sh?token=SECRET123\n    hash: {'ab' * 32}\n"
    )
    assert main(["plan", str(manifest), "--json"]) == 0
    out = capsys.readouterr().out
    assert "SECRET123" not in out and "token=***" in out


@pytest.mark.skipif(platform.mac_ver()[0] != "", reason="on a Mac both read the real version")
def test_plan_assumes_the_macos_version_the_sandbox_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plan made on Linux skips what a sandbox run skips: both assume the same macOS version."""
    sandbox = asyncio.run(SandboxPlatform(Paths(root=tmp_path)).facts())
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "format: 1\nuserland:\n"
        f"  - {{name: w, type: wait, path: /tmp/x, only_if: {{os_version: '>= {sandbox.os_version}'}}}}\n"
    )
    assert main(["plan", str(manifest), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["facts"]["os_version"] == sandbox.os_version
    assert doc["steps"][0]["action"] == "run"
