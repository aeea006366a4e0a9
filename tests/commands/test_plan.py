"""`plan` says what the run will really do, refusals included, and its JSON carries what an admin checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bootstrapper.cli import main

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
