"""What the real `bootstrapper run` prints to a pipe and to a terminal, and what its webhook receives."""

from __future__ import annotations

import hashlib
import json
import os
import plistlib
import pty
import re
import select
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from pytest_httpserver import HTTPServer

from bootstrapper.paths import Paths
from tests.support.httpfault import Exchange, FaultServer
from tests.support.runs import run_argv

pytestmark = pytest.mark.slow

#: Longer than a terminal line, so a wrapped or cut line would show.
LONG = ("Check whether this Mac is already enrolled, configured and ready for its user " * 2).strip()
#: 2 MB at 1 MB/s: about eight progress events from the downloader (one per 0.25 s).
BLOB = os.urandom(2_000_000)
RATE = 1_000_000


def _script(body: str) -> bytes:
    return f"#!/bin/sh\n{body}\n".encode()


def _argv(url: str, root: Path, *extra: str) -> list[str]:
    return run_argv(url, root, *extra)


def _env(**more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOTSTRAPPER_")}
    return {**env, "COLUMNS": "80", **more}


def _publish(srv: FaultServer, doc: dict[str, object], scripts: dict[str, bytes]) -> str:
    for name, body in scripts.items():
        srv.add(f"/{name}", lambda ex, body=body: ex.serve(body, etag=None))
    manifest = yaml.safe_dump({"format": 1, "settings": {"allow_http": True, "retries": 0}, **doc}).encode()
    return srv.add("/m.yaml", lambda ex: ex.serve(manifest, etag=None))


def _item(srv: FaultServer, name: str, body: bytes) -> dict[str, str]:
    return {"url": srv.url(f"/{name}"), "hash": hashlib.sha256(body).hexdigest()}


def test_a_piped_run_prints_whole_lines_and_a_line_per_tenth_of_a_download(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    paths = Paths(root=tmp_path / "mac")
    paths.config_plist.parent.mkdir(parents=True)
    paths.config_plist.write_bytes(plistlib.dumps({"no_such_setting": True}))
    pre = _script("exit 1")
    with FaultServer() as srv:

        def slow(ex: Exchange) -> None:
            ex.serve(BLOB, rate=RATE)

        srv.add("/big.bin", slow)
        doc = {
            "preflight": [{"name": LONG, "type": "rootscript", **_item(srv, "pre.sh", pre)}],
            "setupassistant": [
                # No `size`: the total is what the server announces.
                {
                    "name": "big file",
                    "type": "rootfile",
                    **_item(srv, "big.bin", BLOB),
                    "file": "/Library/big.bin",
                }
            ],
        }
        url = _publish(srv, doc, {"pre.sh": pre}) + "?token=SEKRET"
        argv = _argv(url, paths.root, "--model", "Mac14,2", "--os-version", "14.6")
        env = _env(BOOTSTRAPPER_WEBHOOK_URL=httpserver.url_for("/hook"))
        done = subprocess.run(argv, capture_output=True, text=True, timeout=90, env=env, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()

    # One whole line per event, however long the name: not wrapped at 80 columns, not cut.
    assert f"→ {LONG} (rootscript) started" in lines
    assert any(line.startswith(f"✓ {LONG} done") for line in lines)
    assert "phase setupassistant" in lines
    # The summary is lines too (a table would wrap and cut at 80 columns).
    assert not any(ch in done.stdout for ch in "┃│┏└")
    summary = [line for line in lines if LONG in line and "preflight" in line]
    assert len(summary) == 1 and "not set up yet: continuing" in summary[0], lines
    assert lines[-1].startswith("bootstrap finished: success in ")

    # Download progress: a line per tenth, with the size the server announced; not one per chunk.
    progress = [line.strip() for line in lines if line.strip().startswith("big file: downloaded")]
    percents = [int(re.search(r"downloaded (\d+)%", line).group(1)) for line in progress]  # type: ignore[union-attr]
    assert all(line.endswith("of 2.0 MB)") for line in progress), progress
    assert percents == sorted(set(percents)) and percents[-1] == 100, progress
    # Some lines on the way (none without a total), at most one per tenth (never one per chunk).
    assert 3 <= len([p for p in percents if 0 < p < 100]) <= 9, progress

    # Python log records come out as the same `warning: …` lines, never as raw logging lines.
    assert any(
        line.startswith("warning: ") and "unknown setting 'no_such_setting' ignored" in line for line in lines
    ), lines
    assert "bootstrapper[" not in done.stdout + done.stderr and " WARNING " not in done.stdout + done.stderr

    # The webhook says which Mac it is.
    bodies = [request.get_data(as_text=True) for request, _ in httpserver.log]
    assert not any("SEKRET" in body for body in bodies)
    posted = [json.loads(body) for body in bodies]
    assert [p["event"] for p in posted] == ["run_started", "run_finished"]
    for document in posted:
        assert document["manifest"] == url.replace("SEKRET", "***")
        assert document["serial"] == "SANDBOX0001"
        assert document["hostname"] == socket.gethostname()
        assert (document["model"], document["os_version"]) == ("Mac14,2", "14.6")
    assert posted[0]["item_count"] == 2


_ERASE = re.compile(rb"(\r|\x1b\[1A|\x1b\[2K|\x1b\[\?25h|\n)*")


def test_ctrl_c_in_a_terminal_ends_the_live_display_and_says_how_to_resume(tmp_path: Path) -> None:
    paths = Paths(root=tmp_path / "mac")
    slow = _script("touch $BOOTSTRAPPER_ROOT/started; sleep 30")
    with FaultServer() as srv:
        doc = {"setupassistant": [{"name": "slow", "type": "rootscript", **_item(srv, "slow.sh", slow)}]}
        url = _publish(srv, doc, {"slow.sh": slow})
        primary, secondary = pty.openpty()
        run = subprocess.Popen(
            _argv(url, paths.root), stdout=secondary, stderr=subprocess.PIPE, env=_env(TERM="xterm")
        )
        os.close(secondary)
        out = b""
        deadline = time.monotonic() + 40
        interrupted = False
        try:
            while True:
                assert time.monotonic() < deadline, out
                if not interrupted and (paths.root / "started").exists():
                    time.sleep(0.3)  # let the live display draw a frame or two
                    run.send_signal(signal.SIGINT)
                    interrupted = True
                ready, _, _ = select.select([primary], [], [], 0.1)
                if ready:
                    try:
                        chunk = os.read(primary, 65536)
                    except OSError:  # the terminal closed: the run has exited
                        break
                    if not chunk:
                        break
                    out += chunk
        finally:
            os.close(primary)
            code = run.wait(timeout=20)
            assert run.stderr is not None
            stderr = run.stderr.read().decode()
    assert code == 130
    assert stderr == "interrupted; run again to resume\n"
    # The live display was drawn, then erased, with the cursor shown again: nothing half-drawn is left.
    last = out.rfind(b"\x1b[?25h")
    assert b"slow" in out and last > 0
    assert _ERASE.fullmatch(out[last:]), out[last - 200 :]
