"""`run` of a local manifest: its relative and file:// items are read from the disk beside it."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import yaml


def _run(manifest: Path, sandbox: Path) -> subprocess.CompletedProcess[str]:
    argv = [
        sys.executable,
        "-m",
        "bootstrapper",
        "run",
        "--manifest",
        str(manifest),
        "--sandbox",
        str(sandbox),
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def test_a_local_manifest_runs_its_relative_and_file_items(tmp_path: Path) -> None:
    here = tmp_path / "bundle"
    (here / "scripts").mkdir(parents=True)
    one = b"#!/bin/sh\ntouch $BOOTSTRAPPER_ROOT/one\n"
    two = b"#!/bin/sh\ntouch $BOOTSTRAPPER_ROOT/two\n"
    (here / "scripts" / "one.sh").write_bytes(one)
    (here / "two.sh").write_bytes(two)
    doc = {
        "format": 1,
        "setupassistant": [
            {
                "name": "one",
                "type": "rootscript",
                "url": "scripts/one.sh",
                "hash": hashlib.sha256(one).hexdigest(),
            },
            {
                "name": "two",
                "type": "rootscript",
                "url": (here / "two.sh").as_uri(),
                "hash": hashlib.sha256(two).hexdigest(),
            },
        ],
    }
    (here / "m.yaml").write_text(yaml.safe_dump(doc))
    done = _run(here / "m.yaml", tmp_path / "mac")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "mac" / "one").exists() and (tmp_path / "mac" / "two").exists()


def test_a_local_item_with_other_bytes_fails_its_step_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "s.sh").write_bytes(b"#!/bin/sh\ntrue\n")
    doc = {
        "format": 1,
        "setupassistant": [{"name": "s", "type": "rootscript", "url": "s.sh", "hash": "ab" * 32}],
    }
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(doc))
    done = _run(tmp_path / "m.yaml", tmp_path / "mac")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "unexpected error" not in done.stderr
    record = json.loads((tmp_path / "mac" / "Library/Logs/bootstrapper/result.json").read_text())
    assert "sha256 mismatch" in record["steps"][0]["reason"]
