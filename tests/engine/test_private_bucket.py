"""Per-host auth headers from the settings reach every download from the manifest's host, not only the
manifest: items in a private bucket beside the manifest need the same token."""

from __future__ import annotations

import hashlib
import json
import plistlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bootstrapper.paths import Paths
from tests.support.httpfault import Exchange, FaultServer, Handler

pytestmark = pytest.mark.slow

TOKEN = "Bearer s3cr3t-bucket-token"


def _private(data: bytes) -> Handler:
    def answer(ex: Exchange) -> None:
        if ex.headers.get("authorization") != TOKEN:
            ex.reply(401, b"token required")
            return
        ex.serve(data, etag=None)

    return answer


def test_settings_headers_reach_items_beside_the_manifest(tmp_path: Path) -> None:
    script = b'#!/bin/sh\necho fetched > "$BOOTSTRAPPER_ROOT/ran"\n'
    paths = Paths(root=tmp_path / "mac")
    # The settings an MDM profile would install: the header for the manifest's host.
    paths.managed_prefs.parent.mkdir(parents=True)
    paths.managed_prefs.write_bytes(plistlib.dumps({"headers": {"Authorization": TOKEN}}))
    with FaultServer() as srv:
        srv.add("/bucket/tool.sh", _private(script))
        doc = {
            "format": 1,
            "settings": {"allow_http": True, "retries": 0, "retrywait": 0},
            "setupassistant": [
                {
                    "name": "tool",
                    "type": "rootscript",
                    "url": "tool.sh",
                    "hash": hashlib.sha256(script).hexdigest(),
                }
            ],
        }
        url = srv.add("/bucket/m.yaml", _private(yaml.safe_dump(doc).encode()))
        argv = [sys.executable, "-m", "bootstrapper", "run", "--allow-http", "--manifest", url]
        done = subprocess.run(
            [*argv, "--sandbox", str(paths.root)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        item_requests = srv.requests("/bucket/tool.sh")
    assert done.returncode == 0, done.stderr
    assert [r.headers.get("authorization") for r in item_requests] == [TOKEN]
    assert (paths.root / "ran").read_text() == "fetched\n"
    record = json.loads(paths.result_file.read_text())
    assert record["result"] == "success"
    assert TOKEN.split()[1] not in (paths.log_dir / "bootstrapper.log").read_text()
