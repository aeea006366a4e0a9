"""Parsing XML that came out of an untrusted package.

Package XML (TOC, PackageInfo, Distribution) never needs a DTD, so any DOCTYPE or entity
declaration is refused outright: that closes entity expansion ("billion laughs") and external
entities without a new dependency. Callers cap the size before they get here.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from bootstrapper.errors import PackageError

_DTD = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)


def parse(data: bytes, where: str) -> ET.Element:
    """Parse `data` (named `where` in errors) into an element tree, refusing DTDs."""
    if _DTD.search(data):
        raise PackageError(f"{where}: XML with a DOCTYPE or ENTITY declaration is refused")
    try:
        return ET.fromstring(data)  # noqa: S314 (DTDs refused above: no entity expansion is possible)
    except ET.ParseError as exc:
        raise PackageError(f"{where}: not well-formed XML ({exc})") from None


def local(tag: str) -> str:
    """The tag without its namespace: `{http://www.w3.org/2000/09/xmldsig#}X509Data` → `X509Data`."""
    return tag.rsplit("}", 1)[-1]


def text(elem: ET.Element | None) -> str:
    return (elem.text or "").strip() if elem is not None else ""
