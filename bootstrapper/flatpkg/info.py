"""PackageInfo (a component's identity) and Distribution (a product archive's) as plain values.

Both are read permissively in shape (real files vary: missing attributes, pkg-refs split across
several elements, comments, JavaScript) but strictly where it matters: an identifier must exist,
numbers must be numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote
from xml.etree.ElementTree import Element

from bootstrapper.errors import PackageError
from bootstrapper.flatpkg import _xml

SCRIPT_PHASES = ("preinstall", "postinstall")
#: A macOS version as a Distribution states it ("10.13", "14.6.1"); callers compare its numbers.
_OS_VERSION = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6}){0,5}")


@dataclass(frozen=True)
class PackageInfo:
    identifier: str
    version: str
    #: As written; None when the attribute is absent (installer then uses "/").
    install_location: str | None = None
    auth: str = ""
    format_version: str = ""
    relocatable: bool | None = None
    overwrite_permissions: bool | None = None
    follow_symlinks: bool | None = None
    #: none, logout, restart or shutdown: what installer asks for after the install.
    postinstall_action: str = "none"
    generator_version: str = ""
    number_of_files: int | None = None
    install_kbytes: int | None = None
    #: phase ("preinstall"/"postinstall") → file inside the Scripts archive.
    scripts: Mapping[str, str] = field(default_factory=dict)
    bundles: tuple[str, ...] = ()
    upgrade_bundles: tuple[str, ...] = ()
    relocate_bundles: tuple[str, ...] = ()

    @property
    def effective_install_location(self) -> str:
        return self.install_location or "/"


@dataclass(frozen=True)
class PkgRef:
    """One component a Distribution names, merged from every `<pkg-ref id=…>` element."""

    id: str
    version: str | None = None
    install_kbytes: int | None = None
    package_identifier: str | None = None
    #: The element text, e.g. `#dockutil-3.0.pkg`; `#` means "inside this archive".
    path: str | None = None
    occurrences: int = 1

    @property
    def component(self) -> str | None:
        """The name of the component inside the archive (`dockutil-3.0.pkg`), if it is internal."""
        if self.path and self.path.startswith("#"):
            return unquote(self.path[1:])
        return None


@dataclass(frozen=True)
class Distribution:
    min_spec_version: str = ""
    title: str | None = None
    product_id: str | None = None
    product_version: str | None = None
    pkg_refs: tuple[PkgRef, ...] = ()
    host_architectures: tuple[str, ...] = ()
    minimum_os: str | None = None


def parse_package_info(data: bytes, where: str) -> PackageInfo:
    root = _xml.parse(data, where)
    if _xml.local(root.tag) != "pkg-info":
        raise PackageError(f"{where}: expected a <pkg-info> document, got <{_xml.local(root.tag)}>")
    ident = root.get("identifier", "").strip()
    if not ident:
        raise PackageError(f"{where}: <pkg-info> has no identifier")
    payload = root.find("payload")
    scripts: dict[str, str] = {}
    node = root.find("scripts")
    if node is not None:
        for phase in SCRIPT_PHASES:
            script = node.find(phase)
            if script is not None and script.get("file"):
                scripts[phase] = script.get("file", "")
    return PackageInfo(
        identifier=ident,
        version=root.get("version", "").strip(),
        install_location=root.get("install-location"),
        auth=root.get("auth", ""),
        format_version=root.get("format-version", ""),
        relocatable=_bool(root.get("relocatable")),
        overwrite_permissions=_bool(root.get("overwrite-permissions")),
        follow_symlinks=_bool(root.get("followSymLinks")),
        postinstall_action=root.get("postinstall-action", "none"),
        generator_version=root.get("generator-version", ""),
        number_of_files=_int(payload.get("numberOfFiles") if payload is not None else None, where),
        install_kbytes=_int(payload.get("installKBytes") if payload is not None else None, where),
        scripts=scripts,
        bundles=tuple(b.get("id", "") for b in root.findall("bundle")),
        upgrade_bundles=_ids(root.find("upgrade-bundle")),
        relocate_bundles=_ids(root.find("relocate")),
    )


def parse_distribution(data: bytes, where: str) -> Distribution:
    root = _xml.parse(data, where)
    if _xml.local(root.tag) not in ("installer-gui-script", "installer-script"):
        raise PackageError(f"{where}: expected <installer-gui-script>, got <{_xml.local(root.tag)}>")
    refs: dict[str, PkgRef] = {}
    for elem in root.iter("pkg-ref"):
        _merge(refs, elem, where)
    arches: tuple[str, ...] = ()
    for opt in root.iter("options"):
        value = opt.get("hostArchitectures")
        if value:
            arches = tuple(a.strip() for a in value.split(",") if a.strip())
    minimum = None
    for osv in root.iter("os-version"):
        minimum = (osv.get("min") or "").strip() or minimum
        if minimum:
            if not _OS_VERSION.fullmatch(minimum):
                raise PackageError(f"{where}: <os-version min={minimum[:40]!r}> is not a macOS version")
            break
    product = root.find("product")
    title = root.find("title")
    return Distribution(
        min_spec_version=root.get("minSpecVersion", ""),
        title=_xml.text(title) or None if title is not None else None,
        product_id=product.get("id") if product is not None else None,
        product_version=product.get("version") if product is not None else None,
        pkg_refs=tuple(refs.values()),
        host_architectures=arches,
        minimum_os=minimum,
    )


def _merge(refs: dict[str, PkgRef], elem: Element, where: str) -> None:
    ident = elem.get("id")
    if not ident:
        return
    old = refs.get(ident)
    new = PkgRef(
        id=ident,
        version=elem.get("version"),
        install_kbytes=_int(elem.get("installKBytes"), where),
        package_identifier=elem.get("packageIdentifier"),
        path=_xml.text(elem) or None,
    )
    if old is None:
        refs[ident] = new
        return
    refs[ident] = PkgRef(
        id=ident,
        version=old.version or new.version,
        install_kbytes=old.install_kbytes if old.install_kbytes is not None else new.install_kbytes,
        package_identifier=old.package_identifier or new.package_identifier,
        path=old.path or new.path,
        occurrences=old.occurrences + 1,
    )


def _ids(elem: Element | None) -> tuple[str, ...]:
    return tuple(b.get("id", "") for b in elem.findall("bundle")) if elem is not None else ()


def _bool(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.strip().lower() in ("true", "yes", "1")


def _int(value: str | None, where: str) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        raise PackageError(f"{where}: expected a number, got {value!r}") from None
