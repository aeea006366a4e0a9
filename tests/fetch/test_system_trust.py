"""The system's trust store (an MDM-installed root, a TLS-inspecting proxy's CA) and proxies.

On Linux truststore trusts what OpenSSL's default locations hold, which SSL_CERT_FILE / SSL_CERT_DIR
name: pointing them at a trustme CA makes that CA "installed in the system store" for this process.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bootstrapper.config import Config
from bootstrapper.engine.network import fetch_options
from bootstrapper.errors import CertificateError
from bootstrapper.fetch import FetchOptions
from bootstrapper.platform.base import SystemProxy
from tests.fetch.conftest import DATA, Harness
from tests.support.connect_proxy import ConnectProxy
from tests.support.httpfault import FaultServer


def _options(**kw: object) -> FetchOptions:
    return FetchOptions(connect_timeout=5, read_timeout=5, **kw)  # type: ignore[arg-type]


def test_a_root_only_the_system_store_knows_is_trusted(
    h: Harness, tls_srv: FaultServer, system_store: Path
) -> None:
    url = tls_srv.add("/f", lambda ex: ex.serve(DATA))
    assert _options().tls_trust == "system"
    assert h.fetch(h.item(url), _options()).read_bytes() == DATA


def test_certifi_does_not_know_it(h: Harness, tls_srv: FaultServer, system_store: Path) -> None:
    url = tls_srv.add("/f", lambda ex: ex.serve(DATA))
    err = h.fail(h.item(url), _options(tls_trust="certifi"))
    assert isinstance(err, CertificateError)
    assert "install it in the system store or set ca_bundle" in str(err)
    assert tls_srv.requests("/f") == []


def test_ca_bundle_still_adds_to_certifi(h: Harness, tls_srv: FaultServer, ca_file: Path) -> None:
    url = tls_srv.add("/f", lambda ex: ex.serve(DATA))
    assert h.fetch(h.item(url), _options(tls_trust="certifi", ca_bundle=ca_file)).read_bytes() == DATA


def test_the_download_goes_through_the_proxy(h: Harness, tls_srv: FaultServer, system_store: Path) -> None:
    url = tls_srv.add("/f", lambda ex: ex.serve(DATA))
    port = url.split("//", 1)[1].split("/", 1)[0].rpartition(":")[2]
    with ConnectProxy() as proxy:
        assert h.fetch(h.item(url), _options(proxy=proxy.url)).read_bytes() == DATA
        assert proxy.seen == [f"CONNECT localhost:{port} HTTP/1.1"]
    assert len(tls_srv.requests("/f")) == 1


def test_the_proxy_setting_wins_over_the_macs_own() -> None:
    mac = SystemProxy("http://system.example:3128", ("*.local",), exclude_simple=True)
    config = dataclasses.replace(Config(), proxy="http://configured.example:8080")
    configured = fetch_options(config, "https://e.com/m.yaml", mac)
    assert configured.proxy == "http://configured.example:8080"
    # the Mac's exceptions belong to the Mac's proxy
    assert not configured.proxy_bypass and not configured.proxy_bypass.applies_to("a.local")
    system = fetch_options(Config(), "https://e.com/m.yaml", mac)
    assert system.proxy == "http://system.example:3128"
    assert system.proxy_bypass.applies_to("a.local") and system.proxy_bypass.applies_to("intranet")
    assert fetch_options(dataclasses.replace(Config(), tls_trust="certifi")).tls_trust == "certifi"
