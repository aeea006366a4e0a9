"""The Mac's proxy exceptions: which forms match which hosts, and that a listed host never meets the proxy.

The live tests use a real CONNECT proxy and a real TLS server on loopback, reached under two names
(`localhost` and `127.0.0.1`, both in its certificate), so one can be an exception and the other not.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bootstrapper.config import Config
from bootstrapper.engine.network import network_options
from bootstrapper.fetch import FetchOptions
from bootstrapper.fetch.proxy import ProxyBypass
from bootstrapper.paths import Paths
from bootstrapper.platform.macos import Commands, MacOSPlatform
from tests.fetch.conftest import DATA, Harness
from tests.support.connect_proxy import ConnectProxy
from tests.support.fake_macos import MACOS, FakeMac
from tests.support.httpfault import FaultServer


@pytest.mark.parametrize(
    ("entry", "direct", "proxied"),
    [
        # a bare name is that name only (macOS does not extend it to subdomains)
        ("localhost", ["localhost", "LOCALHOST", "localhost."], ["tenant.localhost", "localhost.example"]),
        ("119.29.29.29.dns", ["119.29.29.29.dns"], ["119.29.29.29", "a.119.29.29.29.dns"]),
        # globs over the whole name
        ("*.local", ["printer.local", "a.b.local", "PRINTER.LOCAL"], ["local", "printer.localdomain"]),
        ("*.example.com", ["cdn.example.com"], ["example.com", "badexample.com"]),
        ("192.168.*", ["192.168.1.5"], ["192.169.1.5"]),
        # a leading dot is a suffix: the subdomains, not the domain itself
        (".corp.example.com", ["pkg.corp.example.com", "a.b.corp.example.com"], ["corp.example.com"]),
        # IPv4 as macOS writes it: missing octets are 0, a missing prefix covers the octets written
        ("169.254/16", ["169.254.0.1", "169.254.255.255"], ["169.253.0.1", "169.2540.0.1"]),
        ("192.168.0.0/16", ["192.168.44.1"], ["192.169.0.1"]),
        ("10/8", ["10.200.0.1"], ["11.0.0.1"]),
        ("10.1", ["10.1.2.3"], ["10.2.0.1"]),
        ("127.0.0.1", ["127.0.0.1"], ["127.0.0.2"]),
        # IPv6, and an IPv4 network seen through an IPv4-mapped address
        ("fd00::/8", ["fd12::1", "[fd12::1]"], ["fe80::1"]),
        ("::1", ["::1"], ["::2"]),
        ("127.0.0.0/8", ["::ffff:127.0.0.9"], ["::1"]),
        # an address range is not a name pattern, and a name is never resolved to test it
        ("169.254/16", [], ["link-local.example"]),
    ],
)
def test_exception_forms(entry: str, direct: list[str], proxied: list[str]) -> None:
    bypass = ProxyBypass((entry,))
    assert [h for h in direct if not bypass.applies_to(h)] == []
    assert [h for h in proxied if bypass.applies_to(h)] == []


@pytest.mark.parametrize("entry", ["10.0/33", "300.1/8", "fd00::/200", "not:an:address", " ", ""])
def test_entries_no_form_fits_match_nothing(entry: str) -> None:
    bypass = ProxyBypass((entry,))
    assert not any(bypass.applies_to(h) for h in ("10.0.0.1", "300.1.0.1", "fd00::1", "not", ""))


def test_simple_hostnames() -> None:
    bypass = ProxyBypass(exclude_simple=True)
    assert bypass and bypass.applies_to("intranet") and bypass.applies_to("localhost")
    assert not bypass.applies_to("intranet.corp") and not bypass.applies_to("::1")
    assert not ProxyBypass(("localhost",)).applies_to("intranet")


def test_an_empty_list_is_no_exception() -> None:
    assert not ProxyBypass() and not ProxyBypass(("", "  "))
    assert ProxyBypass(("*.local",))


def _options(proxy: str, bypass: ProxyBypass) -> FetchOptions:
    return FetchOptions(connect_timeout=5, read_timeout=5, proxy=proxy, proxy_bypass=bypass)


def _on(host: str, url: str) -> str:
    return url.replace("://localhost:", f"://{host}:", 1)


def test_a_listed_host_is_fetched_directly(h: Harness, tls_srv: FaultServer, system_store: Path) -> None:
    url = _on("127.0.0.1", tls_srv.add("/f", lambda ex: ex.serve(DATA)))
    with ConnectProxy() as proxy:
        assert h.fetch(h.item(url), _options(proxy.url, ProxyBypass(("127/8",)))).read_bytes() == DATA
        assert proxy.seen == []
    assert len(tls_srv.requests("/f")) == 1


def test_another_host_goes_through_the_proxy(h: Harness, tls_srv: FaultServer, system_store: Path) -> None:
    url = tls_srv.add("/f", lambda ex: ex.serve(DATA))
    with ConnectProxy() as proxy:
        options = _options(proxy.url, ProxyBypass(("127/8", "*.local")))
        assert h.fetch(h.item(url), options).read_bytes() == DATA
        assert proxy.seen == [f"CONNECT localhost:{tls_srv.port} HTTP/1.1"]


def test_the_macs_own_list_decides_per_host(
    h: Harness, tls_srv: FaultServer, system_store: Path, tmp_path: Path
) -> None:
    """The recorded `scutil --proxy`, its proxy moved to our loopback one, read by the Mac platform."""
    by_name = tls_srv.add("/by-name", lambda ex: ex.serve(DATA))
    by_address = _on("127.0.0.1", tls_srv.add("/by-address", lambda ex: ex.serve(DATA)))
    fake = FakeMac(tmp_path / "fakemac")
    mac = MacOSPlatform(Paths(root=tmp_path / "mac"), commands=Commands.under(fake.bin))
    with ConnectProxy() as proxy:
        port = proxy.url.rpartition(":")[2]
        recorded = (MACOS / "scutil-proxy-https-exceptions-simple-hostnames.txt").read_text()
        fake.answer("scutil", ["--proxy"], recorded.replace(": 1082", f": {port}"))
        options = asyncio.run(network_options(Config(), by_name, mac))
        assert options.proxy == proxy.url
        # `localhost` is in the list (and a simple host name); 127.0.0.1 is not in 192.168.0.0/16
        assert h.fetch(h.item(by_name), options).read_bytes() == DATA
        assert proxy.seen == []
        h.dest.unlink()
        assert h.fetch(h.item(by_address), options).read_bytes() == DATA
        assert proxy.seen == [f"CONNECT 127.0.0.1:{tls_srv.port} HTTP/1.1"]


def test_the_proxy_setting_does_not_ask_the_mac(tmp_path: Path) -> None:
    fake = FakeMac(tmp_path / "fakemac")
    mac = MacOSPlatform(Paths(root=tmp_path / "mac"), commands=Commands.under(fake.bin))
    config = Config(proxy="http://configured.example:8080")
    options = asyncio.run(network_options(config, "https://e.com/m.yaml", mac))
    assert options.proxy == "http://configured.example:8080" and not options.proxy_bypass
    assert fake.calls("scutil") == []
