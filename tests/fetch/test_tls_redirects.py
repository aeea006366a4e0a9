"""TLS trust, https-only redirects, and credentials that never leave their own host."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from bootstrapper.errors import CertificateError, UnsafeURLError
from bootstrapper.fetch import FetchOptions
from tests.fetch.conftest import DATA, Harness, tls_context
from tests.support.httpfault import Exchange, FaultServer


def https(ca_file: Path, **kw: object) -> FetchOptions:
    return FetchOptions(ca_bundle=ca_file, connect_timeout=5, read_timeout=5, **kw)  # type: ignore[arg-type]


@pytest.fixture
def other_host(ca: trustme.CA) -> Iterator[FaultServer]:
    """A second TLS server, reached by another host name (127.0.0.1 rather than localhost)."""
    with FaultServer(tls=tls_context(ca), host="127.0.0.1") as server:
        yield server


def test_self_signed_certificate_is_refused_without_the_ca_bundle(h: Harness, tls_srv: FaultServer) -> None:
    url = tls_srv.add("/f", lambda ex: ex.serve(DATA))
    err = h.fail(h.item(url, retries=3), FetchOptions())
    assert isinstance(err, CertificateError)
    assert "ca_bundle" in str(err)
    assert h.sleeps == [], "a certificate does not become trusted by asking again"
    assert tls_srv.requests("/f") == []


def test_self_signed_certificate_is_accepted_with_the_ca_bundle(
    h: Harness, tls_srv: FaultServer, ca_file: Path
) -> None:
    url = tls_srv.add("/f", lambda ex: ex.serve(DATA))
    assert h.fetch(h.item(url), https(ca_file)).read_bytes() == DATA


def test_environment_ca_variables_are_ignored(
    h: Harness, tls_srv: FaultServer, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    # With tls_trust: system, SSL_CERT_FILE is how OpenSSL finds the system store on Linux
    # (tests/fetch/test_system_trust.py); certifi's roots ignore it, as every client ignores the rest.
    err = h.fail(h.item(tls_srv.add("/f", lambda ex: ex.serve(DATA))), FetchOptions(tls_trust="certifi"))
    assert isinstance(err, CertificateError)


def test_client_certificate_is_presented(h: Harness, ca: trustme.CA, ca_file: Path, tmp_path: Path) -> None:
    import ssl

    ctx = tls_context(ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(ctx)
    client = ca.issue_cert("device-1234@example.org")
    pem = tmp_path / "client.pem"
    client.private_key_and_cert_chain_pem.write_to_path(str(pem))
    with FaultServer(tls=ctx) as srv:
        url = srv.add("/f", lambda ex: ex.serve(DATA))
        h.fail(h.item(url, retries=0), https(ca_file))  # the server refuses a client without one
        assert h.fetch(h.item(url), https(ca_file, client_cert=pem)).read_bytes() == DATA


def test_plain_http_url_is_refused(h: Harness, srv: FaultServer) -> None:
    url = srv.add("/f", lambda ex: ex.serve(DATA))
    err = h.fail(h.item(url), FetchOptions())
    assert isinstance(err, UnsafeURLError)
    assert "https" in str(err) and url in str(err)
    assert srv.seen == []


def test_redirect_to_http_is_refused(
    h: Harness, tls_srv: FaultServer, srv: FaultServer, ca_file: Path
) -> None:
    target = srv.add("/f", lambda ex: ex.serve(DATA))
    url = tls_srv.add("/moved", lambda ex: ex.redirect(target, 301))
    err = h.fail(h.item(url), https(ca_file))
    assert isinstance(err, UnsafeURLError)
    assert "not https" in str(err) and target in str(err)
    assert srv.seen == [], "nothing is requested over plain http"
    assert h.sleeps == []


def test_redirect_to_http_on_a_later_hop_is_refused(
    h: Harness, tls_srv: FaultServer, srv: FaultServer, ca_file: Path
) -> None:
    target = srv.add("/f", lambda ex: ex.serve(DATA))
    tls_srv.add("/b", lambda ex: ex.redirect(target))
    url = tls_srv.add("/a", lambda ex: ex.redirect("/b"))
    assert isinstance(h.fail(h.item(url), https(ca_file)), UnsafeURLError)
    assert srv.seen == []


def test_https_redirects_are_followed(h: Harness, tls_srv: FaultServer, ca_file: Path) -> None:
    tls_srv.add("/f", lambda ex: ex.serve(DATA))
    tls_srv.add("/b", lambda ex: ex.redirect("/f", 307))
    url = tls_srv.add("/a", lambda ex: ex.redirect(tls_srv.url("/b"), 302))
    assert h.fetch(h.item(url), https(ca_file)).read_bytes() == DATA


def test_redirect_loop_is_refused(h: Harness, tls_srv: FaultServer, ca_file: Path) -> None:
    tls_srv.add("/b", lambda ex: ex.redirect("/a"))
    url = tls_srv.add("/a", lambda ex: ex.redirect("/b"))
    err = h.fail(h.item(url), https(ca_file))
    assert isinstance(err, UnsafeURLError) and "loop" in str(err)
    assert len(tls_srv.seen) == 2


def test_too_many_redirects_are_refused(h: Harness, tls_srv: FaultServer, ca_file: Path) -> None:
    for n in range(20):
        tls_srv.add(f"/{n}", lambda ex, n=n: ex.redirect(f"/{n + 1}"))  # type: ignore[misc]
    err = h.fail(h.item(tls_srv.url("/0")), https(ca_file))
    assert isinstance(err, UnsafeURLError) and "more than 10 redirects" in str(err)
    assert len(tls_srv.seen) == 11


def test_auth_header_is_not_sent_to_a_redirect_target_on_another_host(
    h: Harness, tls_srv: FaultServer, other_host: FaultServer, ca_file: Path
) -> None:
    cdn = other_host.add("/blob", lambda ex: ex.serve(DATA))

    def origin(ex: Exchange) -> None:
        if ex.headers.get("authorization") != "Bearer s3cret-token":
            ex.reply(401)
        else:
            ex.redirect(cdn)

    options = https(
        ca_file,
        auth_headers={
            "localhost": {"Authorization": "Bearer s3cret-token"},
            "127.0.0.1": {"X-CDN-Key": "cdn-key"},
        },
    )
    item = h.item(tls_srv.add("/f", origin), headers={"X-Item-Token": "item-secret"})
    assert h.fetch(item, options).read_bytes() == DATA

    (asked,) = tls_srv.requests("/f")
    assert asked.headers["authorization"] == "Bearer s3cret-token"
    assert asked.headers["x-item-token"] == "item-secret"
    (followed,) = other_host.requests("/blob")
    assert "authorization" not in followed.headers
    assert "x-item-token" not in followed.headers
    assert followed.headers["x-cdn-key"] == "cdn-key", "each host gets the headers configured for it"


def test_auth_header_follows_a_redirect_on_the_same_origin(
    h: Harness, tls_srv: FaultServer, ca_file: Path
) -> None:
    tls_srv.add("/f", lambda ex: ex.serve(DATA))
    url = tls_srv.add("/a", lambda ex: ex.redirect("/f"))
    h.fetch(h.item(url, headers={"Authorization": "Bearer t0ken"}), https(ca_file))
    assert tls_srv.requests("/f")[0].headers["authorization"] == "Bearer t0ken"
