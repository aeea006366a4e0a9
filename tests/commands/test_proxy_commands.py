"""Every command that fetches goes through the same proxy as the run: `plan`, `validate --deep` and
`run --dry-run` of a remote manifest, with the `proxy` setting or the Mac's own proxy and exceptions.

Real parts: a TLS server on loopback (its CA is the process's system store), a CONNECT proxy on
loopback, the commands run through the CLI's entry point, the Mac platform with a fake `scutil`
that answers a recorded `scutil --proxy`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from bootstrapper import daemon
from bootstrapper.cli import main
from bootstrapper.config import Config
from bootstrapper.engine import network
from bootstrapper.paths import Paths
from bootstrapper.platform.macos import Commands, MacOSPlatform
from tests.fetch.conftest import tls_context
from tests.support.connect_proxy import ConnectProxy
from tests.support.fake_macos import MACOS, FakeMac
from tests.support.httpfault import FaultServer

SCRIPT = b"#!/bin/sh\necho hello\n"


@pytest.fixture
def tls_srv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultServer]:
    """A TLS server for `localhost` and `127.0.0.1` whose CA only this process's system store knows."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    empty = tmp_path / "no-certs"
    empty.mkdir()
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    monkeypatch.setenv("SSL_CERT_DIR", str(empty))
    monkeypatch.delenv("BOOTSTRAPPER_PROXY", raising=False)
    with FaultServer(tls=tls_context(ca)) as server:
        yield server


def _manifest(srv: FaultServer, item_host: str = "localhost") -> str:
    """A manifest on `localhost` whose one script is served under `item_host`."""
    srv.add("/s.sh", lambda ex: ex.serve(SCRIPT))
    item = f"https://{item_host}:{srv.port}/s.sh"
    doc = (
        "format: 1\nsetupassistant:\n  - name: hello\n    type: rootscript\n"
        f"    url: {item}\n    hash: {hashlib.sha256(SCRIPT).hexdigest()}\n"
    )
    return srv.add("/m.yaml", lambda ex: ex.serve(doc.encode()))


def _connect(srv: FaultServer, host: str = "localhost") -> str:
    return f"CONNECT {host}:{srv.port} HTTP/1.1"


def test_plan_of_a_remote_manifest_uses_the_proxy_setting(
    tls_srv: FaultServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _manifest(tls_srv)
    with ConnectProxy() as proxy:
        monkeypatch.setenv("BOOTSTRAPPER_PROXY", proxy.url)
        assert main(["plan", url, "--json"]) == 0
        assert proxy.seen == [_connect(tls_srv)]
    assert [s["action"] for s in json.loads(capsys.readouterr().out)["steps"]] == ["run"]
    assert len(tls_srv.requests("/m.yaml")) == 1


def test_validate_deep_fetches_the_manifest_and_its_items_through_the_proxy(
    tls_srv: FaultServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _manifest(tls_srv)
    with ConnectProxy() as proxy:
        monkeypatch.setenv("BOOTSTRAPPER_PROXY", proxy.url)
        assert main(["validate", "--deep", "--format", "json", url]) == 0
        # one tunnel for the manifest, one for the item (a new client each)
        assert proxy.seen == [_connect(tls_srv)] * 2
    deep = json.loads(capsys.readouterr().out)["manifests"][0]["deep"]
    assert [(c["ok"], c["sha256"]) for c in deep] == [(True, hashlib.sha256(SCRIPT).hexdigest())]
    assert len(tls_srv.requests("/s.sh")) == 1


def test_the_commands_use_the_macs_proxy_and_its_exceptions(
    tls_srv: FaultServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On a Mac (its platform faked down to `scutil`): `localhost` is in the recorded exceptions and
    goes direct; the item on 127.0.0.1 is not, and goes through the Mac's proxy."""
    url = _manifest(tls_srv, item_host="127.0.0.1")
    fake = FakeMac(tmp_path / "fakemac")
    mac = MacOSPlatform(Paths(root=tmp_path / "mac"), commands=Commands.under(fake.bin))
    monkeypatch.setattr(network, "host_platform", lambda: mac)
    with ConnectProxy() as proxy:
        port = proxy.url.rpartition(":")[2]
        recorded = (MACOS / "scutil-proxy-https-exceptions-simple-hostnames.txt").read_text()
        fake.answer("scutil", ["--proxy"], recorded.replace(": 1082", f": {port}"))
        assert main(["plan", url, "--json"]) == 0
        assert proxy.seen == []
        assert main(["validate", "--deep", "--format", "json", url]) == 0
        assert proxy.seen == [_connect(tls_srv, "127.0.0.1")]
    assert fake.calls("scutil") == [["--proxy"]] * 3
    assert len(tls_srv.requests("/m.yaml")) == 2 and len(tls_srv.requests("/s.sh")) == 1
    capsys.readouterr()


def test_a_dry_run_reads_the_manifest_through_the_macs_proxy(tls_srv: FaultServer, tmp_path: Path) -> None:
    """`run --dry-run` on a Mac: the manifest on 127.0.0.1 is not in the Mac's exceptions."""
    url = _on_address(_manifest(tls_srv))
    fake = FakeMac(tmp_path / "fakemac")
    paths = Paths(root=tmp_path / "mac")
    mac = MacOSPlatform(paths, commands=Commands.under(fake.bin))
    with ConnectProxy() as proxy:
        port = proxy.url.rpartition(":")[2]
        recorded = (MACOS / "scutil-proxy-https-exceptions-simple-hostnames.txt").read_text()
        fake.answer("scutil", ["--proxy"], recorded.replace(": 1082", f": {port}"))
        loaded, steps, _facts = asyncio.run(
            daemon.dry_run_plan(daemon.Setup(url, Config(), paths, mac, False))
        )
        assert proxy.seen == [_connect(tls_srv, "127.0.0.1")]
    assert [s.item.name for s in steps] == ["hello"] and loaded.manifest.items
    assert tls_srv.requests("/s.sh") == []


def _on_address(url: str) -> str:
    return url.replace("://localhost:", "://127.0.0.1:", 1)
