"""`validate` reads a manifest from standard input, and a manifest URL that does not exist is bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bootstrapper.cli import main
from tests.support.httpfault import FaultServer

BROKEN = b"format: 1\nuserland:\n  - name: a\n    type: rootscirpt\n"


def _validate(*args: str, stdin: bytes) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bootstrapper", "validate", *args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        check=False,
    )


def test_dash_reads_standard_input() -> None:
    proc = _validate("-", stdin=BROKEN)
    assert proc.returncode == 2
    assert proc.stdout.splitlines()[0].startswith(
        "error: <stdin>:4:11: userland[0] \"a\" → type: 'rootscirpt' is not an item type"
    )
    assert proc.stdout.splitlines()[-1] == "<stdin>: invalid (1 error, 0 warnings)"
    ok = _validate("-", stdin=b"format: 1\nuserland:\n  - {name: w, type: wait, path: /tmp/x}\n")
    assert (ok.returncode, ok.stdout.splitlines()[-1]) == (0, "<stdin>: valid (1 item, 0 warnings)")


@pytest.mark.parametrize("status", [404, 410])
def test_a_manifest_url_that_does_not_exist_is_bad_input(
    status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    with FaultServer() as srv:
        url = srv.add("/m.yaml", lambda ex: ex.reply(status))
        code = main(["validate", "--allow-http", url])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(
        f"error: the manifest URL {url} was not found (HTTP {status}); check the manifest URL"
    )
    assert "item" not in err
    assert len(err.splitlines()) == 1


def test_a_manifest_that_stays_unreachable_is_a_failed_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bootstrapper.engine import source

    monkeypatch.setattr(source, "FETCH_DEADLINE", 0.5)
    with FaultServer() as srv:
        url = srv.add("/m.yaml", lambda ex: ex.reply(503))
        code = main(["validate", "--allow-http", url])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"error: {url}: no manifest after 0.5s")
