"""Parsing XML that came out of an untrusted package.

Package XML (TOC, PackageInfo, Distribution) never needs a DTD, so any DOCTYPE or entity
declaration is refused outright: that closes entity expansion ("billion laughs") and external
entities without a new dependency. The check runs in expat itself, before the tree is built, so a
DOCTYPE hidden behind another encoding (UTF-16, say) is refused as well as a plain one. Callers
cap the size before they get here.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import NoReturn
from xml.parsers import expat

from bootstrapper.errors import PackageError

_DTD = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)


class _Refused(Exception):
    """Raised from an expat handler to stop the pre-scan at the first DTD."""


def _refuse(*_: object) -> NoReturn:
    raise _Refused


def _no_dtd(data: bytes) -> bool:
    """True when expat meets no DOCTYPE or entity declaration in `data` (whatever its encoding)."""
    if _DTD.search(data):
        return False
    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    try:
        parser.Parse(data, True)
    except _Refused:
        return False
    except (expat.ExpatError, ValueError, LookupError):
        pass  # not well-formed: ElementTree below says so in its own words
    return True


def parse(data: bytes, where: str) -> ET.Element:
    """Parse `data` (named `where` in errors) into an element tree, refusing DTDs."""
    if not _no_dtd(data):
        raise PackageError(f"{where}: XML with a DOCTYPE or ENTITY declaration is refused")
    try:
        return ET.fromstring(data)  # noqa: S314 (DTDs refused above: no entity expansion is possible)
    except ET.ParseError as exc:
        raise PackageError(f"{where}: not well-formed XML ({exc})") from None
    except (ValueError, LookupError) as exc:  # an unknown or impossible encoding declaration
        raise PackageError(f"{where}: unreadable XML ({exc})") from None


def local(tag: str) -> str:
    """The tag without its namespace: `{http://www.w3.org/2000/09/xmldsig#}X509Data` → `X509Data`."""
    return tag.rsplit("}", 1)[-1]


def text(elem: ET.Element | None) -> str:
    return (elem.text or "").strip() if elem is not None else ""
