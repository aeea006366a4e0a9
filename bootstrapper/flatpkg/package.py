"""A macOS flat package: a xar archive that is either a component or a product archive.

- component: `PackageInfo`, `Payload`, `Scripts`, `Bom` at the top of the archive.
- product archive: `Distribution` at the top, and one `<name>.pkg/` folder per component.

`FlatPackage` opens and checks the archive once; `facts()` is the plain summary that
`bootstrapper pkg info` prints and the platforms and validators consume.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bootstrapper.errors import PackageError
from bootstrapper.flatpkg import cpio, der
from bootstrapper.flatpkg._io import Closing
from bootstrapper.flatpkg.info import Distribution, PackageInfo, parse_distribution, parse_package_info
from bootstrapper.flatpkg.xar import Member, SignatureBlock, XarArchive
from bootstrapper.hashing import sha256_file


@dataclass(frozen=True)
class Component:
    """One installable component; `name` is its folder in a product archive ("" at the top)."""

    name: str
    info: PackageInfo
    has_payload: bool
    has_scripts: bool
    has_bom: bool
    payload_format: str


@dataclass(frozen=True)
class CertificateInfo:
    common_name: str
    issuer: str
    team: str


@dataclass(frozen=True)
class Signature:
    #: "signature" (RSA over the TOC checksum) or "x-signature" (CMS).
    element: str
    style: str
    offset: int
    size: int
    certificates: tuple[CertificateInfo, ...]
    #: For RSA: does the signature match the leaf certificate's key? None where not checked (CMS).
    #: The chain of trust is not evaluated here.
    matches_leaf_key: bool | None


@dataclass(frozen=True)
class PackageFacts:
    path: str
    size: int
    sha256: str
    kind: Literal["component", "product"]
    components: tuple[Component, ...]
    distribution: Distribution | None
    #: pkg-refs pointing inside the archive at a component that is not there.
    dangling_pkg_refs: tuple[str, ...]
    signed: bool
    signatures: tuple[Signature, ...]
    xar_header_size: int
    xar_version: int
    toc_length_compressed: int
    toc_length_uncompressed: int
    toc_checksum: str | None
    heap_start: int
    heap_end: int
    trailing_bytes: int
    creation_time: str | None
    members: tuple[str, ...]

    @property
    def component_ids(self) -> tuple[str, ...]:
        return tuple(c.info.identifier for c in self.components)

    @property
    def has_payload(self) -> bool:
        """Does any component install files? An "empty payload" (only `.`) counts as none.

        Decided from PackageInfo's numberOfFiles (which counts `.`), so nothing is decompressed.
        """
        return any(
            c.has_payload and c.payload_format != "empty" and (c.info.number_of_files or 2) > 1
            for c in self.components
        )

    @property
    def team(self) -> str | None:
        """The leaf certificate's team (its subject's OU, "Developer ID Installer: Name (TEAMID)"),
        as written: whether Apple issued it is decided at install time (`Platform.package_team`)."""
        for sig in self.signatures:
            if sig.certificates:
                return sig.certificates[0].team or None
        return None

    @property
    def signer(self) -> str | None:
        for sig in self.signatures:
            if sig.certificates:
                return sig.certificates[0].common_name
        return None


class FlatPackage(Closing):
    """An open flat package. Use as a context manager; everything is checked on open."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.xar = XarArchive(self.path)
        with self.closed_on_error():
            self._classify()

    def close(self) -> None:
        self.xar.close()

    def error(self, problem: str) -> PackageError:
        return self.xar.error(problem)

    def _classify(self) -> None:
        x = self.xar
        dist = x.member("Distribution")
        self.distribution: Distribution | None = None
        names: list[str] = []
        if dist is not None:
            self.kind: Literal["component", "product"] = "product"
            self.distribution = parse_distribution(x.read(dist), f"{self.path}: Distribution")
            names = [
                m.path
                for m in x.members
                if m.parent == "" and m.type == "directory" and x.member(f"{m.path}/PackageInfo") is not None
            ]
        elif x.member("PackageInfo") is not None:
            self.kind = "component"
            names = [""]
        else:
            raise self.error(
                "not a flat package: the xar archive has neither PackageInfo nor Distribution"
                f" (members: {', '.join(m.path for m in x.members[:5]) or 'none'})"
            )
        self.components = tuple(self._component(n) for n in names)

    def _member(self, component: str, name: str) -> Member | None:
        m = self.xar.member(f"{component}/{name}" if component else name)
        return m if m is not None and m.type == "file" else None

    def _component(self, name: str) -> Component:
        info_member = self._member(name, "PackageInfo")
        if info_member is None:
            raise self.error(f"component {name or '(top)'} has no PackageInfo file")
        where = f"{name}/PackageInfo" if name else "PackageInfo"
        info = parse_package_info(self.xar.read(info_member, where), f"{self.path}: {where}")
        payload = self._member(name, "Payload")
        fmt = "none"
        if payload is not None:
            if payload.data is None or payload.data.length == 0:
                fmt = "empty"
            else:
                with self.xar.open(payload) as fh:
                    kind = cpio.sniff(fh)
                fmt = "cpio" if kind == "cpio" else f"{kind}-cpio" if kind != "unknown" else "unknown"
        return Component(
            name=name,
            info=info,
            has_payload=payload is not None,
            has_scripts=self._member(name, "Scripts") is not None,
            has_bom=self._member(name, "Bom") is not None,
            payload_format=fmt,
        )

    def component(self, identifier: str) -> Component | None:
        return next((c for c in self.components if c.info.identifier == identifier), None)

    def install_order(self) -> tuple[Component, ...]:
        """Components in the Distribution's pkg-ref order (a component's own order otherwise).

        A pkg-ref that points at a missing component is an error here: installing it would fail.
        """
        if self.distribution is None:
            return self.components
        by_name = {c.name: c for c in self.components}
        order: list[Component] = []
        for ref in self.distribution.pkg_refs:
            name = ref.component
            if name is None:
                continue
            if name not in by_name:
                raise self.error(f"pkg-ref {ref.id} points at {ref.path}, which is not in the archive")
            if by_name[name] not in order:
                order.append(by_name[name])
        order.extend(c for c in self.components if c not in order)
        return tuple(order)

    def dangling_pkg_refs(self) -> tuple[str, ...]:
        if self.distribution is None:
            return ()
        present = {c.name for c in self.components}
        return tuple(
            r.id for r in self.distribution.pkg_refs if r.component is not None and r.component not in present
        )

    @contextlib.contextmanager
    def open_payload(self, component: Component, which: str = "Payload") -> Iterator[cpio.CpioReader]:
        """Stream the component's Payload (or Scripts) as cpio entries.

        Checksums are checked when the member has been read to its end, which happens when the
        `with` block ends normally: read every entry (as `scan` does) before trusting the data.
        """
        member = self._member(component.name, which)
        where = f"{component.name}/{which}" if component.name else which
        if member is None:
            raise self.error(f"{where} is missing")
        with self.xar.open(member, where) as fh:

            def problem(msg: str) -> PackageError:
                return self.error(f"{where}: {msg}")

            if member.data is None or member.data.length == 0:
                yield cpio.CpioReader(io.BytesIO(cpio.EMPTY), problem)
                return
            _, reader = cpio.open_archive(fh, problem)
            yield reader
            # Read the member to its end, so that its checksums and size are checked even though
            # the cpio reader stopped at the trailer.
            while fh.read(cpio.CHUNK):
                pass

    def verify_member(self, component: Component, which: str) -> None:
        member = self._member(component.name, which)
        if member is not None:
            self.xar.verify(member)

    def signatures(self) -> tuple[Signature, ...]:
        return tuple(self._signature(s) for s in self.xar.signatures)

    def _signature(self, block: SignatureBlock) -> Signature:
        certs: list[CertificateInfo] = []
        parsed: list[der.Certificate] = []
        for raw in block.certificates:
            try:
                c = der.parse_certificate(raw)
            except der.DERError as exc:
                raise self.error(f"<{block.element}>: unreadable certificate ({exc})") from None
            parsed.append(c)
            certs.append(CertificateInfo(c.common_name, c.issuer_common_name, c.organizational_unit))
        matches: bool | None = None
        if block.style.upper() == "RSA" and parsed and self.xar.toc_checksum is not None:
            sig = self.xar.heap_bytes(block.offset, block.size)
            digest = bytes.fromhex(self.xar.toc_checksum.hexdigest)
            matches = der.rsa_pkcs1_verify(parsed[0], sig, digest)
        return Signature(block.element, block.style, block.offset, block.size, tuple(certs), matches)

    def facts(self, *, digest: bool = True) -> PackageFacts:
        x = self.xar
        h = x.header
        sigs = self.signatures()
        return PackageFacts(
            path=str(self.path),
            size=x.file_size,
            sha256=sha256_file(self.path, follow_symlinks=True) if digest else "",
            kind=self.kind,
            components=self.components,
            distribution=self.distribution,
            dangling_pkg_refs=self.dangling_pkg_refs(),
            signed=bool(sigs),
            signatures=sigs,
            xar_header_size=h.header_size,
            xar_version=h.version,
            toc_length_compressed=h.toc_length_compressed,
            toc_length_uncompressed=h.toc_length_uncompressed,
            toc_checksum=x.toc_checksum.hexdigest if x.toc_checksum else None,
            heap_start=x.heap_start,
            heap_end=x.heap_end,
            trailing_bytes=x.file_size - x.heap_end,
            creation_time=x.creation_time,
            members=tuple(m.path for m in x.members),
        )


def read_facts(path: Path, *, digest: bool = True) -> PackageFacts:
    """Open, check and summarize one package; `digest=False` skips hashing the whole file (callers
    that verified it already, such as the engine right before an install, leave `sha256` empty)."""
    with FlatPackage(path) as pkg:
        return pkg.facts(digest=digest)
