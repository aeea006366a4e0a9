"""Build manifests in tests: write YAML/JSON text and load it, returning errors or the manifest."""

from __future__ import annotations

import textwrap

import pytest

from bootstrapper.errors import ManifestError
from bootstrapper.manifest.load import load_bytes
from bootstrapper.manifest.model import Loaded

HASH = "a" * 64
URL = "https://example.com/item"


def load(text: str, *, source: str = "m.yaml", allow_http: bool = False, local: bool = False) -> Loaded:
    return load_bytes(
        textwrap.dedent(text).encode(),
        source,
        location="https://example.com/manifests/m.yaml",
        local=local,
        allow_http=allow_http,
    )


def errors(text: str, **kwargs: object) -> list[str]:
    with pytest.raises(ManifestError) as info:
        load(text, **kwargs)  # type: ignore[arg-type]
    return info.value.problems


def warnings(text: str, **kwargs: object) -> list[str]:
    return [str(w) for w in load(text, **kwargs).warnings]  # type: ignore[arg-type]
