"""Any document gives a manifest or a ManifestError, never another exception."""

from __future__ import annotations

import json

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bootstrapper.errors import ManifestError
from bootstrapper.fetch.model import check_url
from bootstrapper.manifest.load import load_bytes

KEYS = [
    "format",
    "settings",
    "preflight",
    "setupassistant",
    "userland",
    "name",
    "type",
    "url",
    "hash",
    "file",
    "packageid",
    "version",
    "required",
    "donotwait",
    "retries",
    "retrywait",
    "fail_policy",
    "skip_if",
    "only_if",
    "timeout",
    "size",
    "path",
    "arguments",
    "arch",
    "os_version",
    "model",
    "path_exists",
    "x",
]
VALUES = [
    "package",
    "rootscript",
    "userscript",
    "rootfile",
    "userfile",
    "wait",
    "https://e.com/a",
    "a" * 64,
    "/Library/bootstrapper/a",
    "intel",
    ">= 14",
    "failable",
    "../x",
    "http://e.com",
    "",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.sampled_from(VALUES)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(KEYS), children, max_size=5)
    ),
    max_leaves=30,
)


def _check(data: bytes) -> None:
    try:
        load_bytes(data, "fuzz", location="https://e.com/m.yaml")
    except ManifestError as exc:
        assert exc.problems
        assert all(isinstance(p, str) and "\n" not in p for p in exc.problems)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_structured_documents_never_crash_the_loader(doc: object) -> None:
    _check(json.dumps(doc).encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_loader(data: bytes) -> None:
    _check(data)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="format: 1\n-[]{}&*!|>'\"#%@`,?userland", max_size=120))
def test_yaml_like_text_never_crashes_the_loader(text: str) -> None:
    _check(text.encode())


#: Pieces of URLs that have broken parsers: brackets, odd ports, spaces, percent signs, user info.
_HOSTS = st.sampled_from(
    ["e.com", "[::1]", "[::1", "::1]", "[zz]", "e x.com", "e%20x", "bücher.de", "", "u@e.com"]
)
_PORTS = st.sampled_from(["", ":", ":443", ":0", ":99999", ":abc", ":-1", ":٣", ":1:2"]) | st.text(
    max_size=6
).map(lambda t: ":" + t)
urls = st.builds(
    lambda scheme, host, port, path: f"{scheme}{host}{port}{path}",
    st.sampled_from(["https://", "http://", "file://", "ftp://", "", "//", "https:"]),
    _HOSTS | st.text(max_size=10),
    _PORTS,
    st.sampled_from(["/a.sh", "", "/[x]", "?q=1", "#f", "/a b"]),
)


@settings(max_examples=400, deadline=None)
@given(urls)
def test_urls_never_crash_the_loader_and_what_loads_can_be_fetched(url: str) -> None:
    """A URL is refused with a line of its own, or it is one the downloader can use."""
    doc = {"format": 1, "userland": [{"name": "a", "type": "rootscript", "url": url, "hash": "a" * 64}]}
    try:
        loaded = load_bytes(json.dumps(doc).encode(), "fuzz", location="https://e.com/m.yaml")
    except ManifestError as exc:
        assert exc.problems and all("\n" not in p for p in exc.problems)
        return
    accepted = loaded.manifest.items[0].url
    assert accepted is not None
    check_url(accepted, "fuzz")
    httpx.URL(accepted)
