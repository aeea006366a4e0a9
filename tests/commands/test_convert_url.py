"""`convert` reads an InstallApplications manifest from a URL as well as from a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootstrapper.cli import main
from tests.support.httpfault import FaultServer

IA = b"""{
  "preflight": [],
  "setupassistant": [
    {"file": "/Library/installapplications/a.pkg", "url": "https://example.com/a.pkg",
     "hash": "%s", "name": "A", "packageid": "com.example.a", "version": "1.0", "type": "package"}
  ],
  "userland": []
}
""" % (b"ab" * 32)


def test_convert_reads_a_manifest_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with FaultServer() as srv:
        url = srv.add("/bootstrap.json", lambda ex: ex.serve(IA))
        assert main(["convert", "--allow-http", url]) == 0
    out = capsys.readouterr().out
    assert "name: A" in out
    assert "ab" * 32 in out


def test_convert_refuses_plain_http_without_allow_http(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", "http://127.0.0.1:9/bootstrap.json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: http://127.0.0.1:9/bootstrap.json: http:// is refused")


def test_convert_of_a_missing_url_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with FaultServer() as srv:
        code = main(["convert", "--allow-http", srv.url("/nothing.json")])
    err = capsys.readouterr().err
    assert code in (1, 2)
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
