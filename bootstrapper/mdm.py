"""The InstallEnterpriseApplication app manifest and command for our (or any) product archive.

The manifest follows Apple's ManifestURL reference (apple/device-management other/manifesturl.yaml):
`items` → `assets` (kind `software-package`, `url`, chunked hashes) and `metadata` (`bundle-identifier`,
`bundle-version`, `kind` `software`, `title`). Hashes are per chunk, as MicroMDM's appmanifest package
computes them: chunks of 10 MiB, the chunk size capped at the file size, one digest per chunk, the
last chunk short. Both md5s and sha256s are given: macOS uses the sha256s when both are present,
older MDM servers and tools read the md5s.
"""

from __future__ import annotations

import base64
import hashlib
import json
import plistlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from bootstrapper.errors import PackageError, UsageError

CHUNK_SIZE = 10 * 1024 * 1024
_READ = 1024 * 1024


@dataclass(frozen=True)
class ChunkHashes:
    size: int
    chunk_size: int
    md5s: list[str]
    sha256s: list[str]


@dataclass(frozen=True)
class Product:
    """What the manifest's metadata says about a product archive."""

    identifier: str
    version: str
    title: str
    signed: bool
    signer: str | None = None


def chunk_hashes(stream: BinaryIO, size: int, chunk_size: int = CHUNK_SIZE) -> ChunkHashes:
    """md5 and sha256 of every `chunk_size` bytes of `stream` (which holds `size` bytes)."""
    if size <= 0:
        raise PackageError("the package is empty")
    chunk_size = min(chunk_size, size)
    md5s: list[str] = []
    sha256s: list[str] = []
    md5, sha, filled = hashlib.md5(usedforsecurity=False), hashlib.sha256(), 0
    while block := stream.read(min(_READ, chunk_size - filled)):
        md5.update(block)
        sha.update(block)
        filled += len(block)
        if filled == chunk_size:
            md5s.append(md5.hexdigest())
            sha256s.append(sha.hexdigest())
            md5, sha, filled = hashlib.md5(usedforsecurity=False), hashlib.sha256(), 0
    if filled:
        md5s.append(md5.hexdigest())
        sha256s.append(sha.hexdigest())
    return ChunkHashes(size, chunk_size, md5s, sha256s)


def read_product(pkg: Path, *, allow_unsigned: bool = False) -> tuple[Product, list[str]]:
    """The archive's identity, and warnings; a component package, a broken archive and (unless
    `allow_unsigned`, for labs) an unsigned archive are refused: macOS will not install it from MDM,
    and the device reports that only after acknowledging the command, out of the MDM's sight."""
    from bootstrapper.flatpkg import read_package

    facts = read_package(pkg)
    if facts.kind != "product" or facts.distribution is None:
        raise PackageError(
            f"{pkg}: a component package; MDM installs only product archives. "
            f"Wrap it: productbuild --package {pkg} {pkg.with_name(pkg.stem + '-product.pkg')}"
        )
    if facts.dangling_pkg_refs:
        missing = ", ".join(facts.dangling_pkg_refs)
        raise PackageError(f"{pkg}: the Distribution names components missing from the archive: {missing}")
    dist = facts.distribution
    first_ref = dist.pkg_refs[0] if dist.pkg_refs else None
    identifier = dist.product_id or (first_ref.id if first_ref else None)
    version = dist.product_version or (first_ref.version if first_ref else None)
    if not identifier and facts.components:
        identifier = facts.components[0].info.identifier
        version = version or facts.components[0].info.version
    if not identifier:
        raise PackageError(f"{pkg}: no product or package identifier in the Distribution")
    warnings = []
    if not facts.signed:
        fix = "sign it with productsign --sign 'Developer ID Installer: …'"
        if not allow_unsigned:
            raise PackageError(
                f"{pkg}: not signed; macOS refuses unsigned packages from MDM: {fix} "
                "(or pass --allow-unsigned for a lab)"
            )
        warnings.append(
            f"{pkg}: not signed (--allow-unsigned); macOS refuses unsigned packages from MDM: {fix}"
        )
    product = Product(
        identifier=identifier,
        version=version or "0",
        title=dist.title or pkg.stem,
        signed=facts.signed,
        signer=facts.signer,
    )
    return product, warnings


def app_manifest(product: Product, url: str, hashes: ChunkHashes) -> dict[str, Any]:
    asset = {
        "kind": "software-package",
        "url": url,
        "md5-size": hashes.chunk_size,
        "md5s": hashes.md5s,
        "sha256-size": hashes.chunk_size,
        "sha256s": hashes.sha256s,
    }
    metadata: dict[str, Any] = {
        "bundle-identifier": product.identifier,
        "bundle-version": product.version,
        "kind": "software",
        "title": product.title,
    }
    if product.signer:
        metadata["subtitle"] = product.signer
    return {"items": [{"assets": [asset], "metadata": metadata}]}


def install_command(
    *,
    manifest: dict[str, Any] | None = None,
    manifest_url: str | None = None,
    pinning_certs: Sequence[bytes] = (),
    revocation_check: bool = False,
    command_uuid: str | None = None,
) -> dict[str, Any]:
    """The raw command plist (`Command` + `CommandUUID`), as NanoMDM-style servers enqueue it."""
    if (manifest is None) == (manifest_url is None):
        raise ValueError("give exactly one of manifest and manifest_url")
    command: dict[str, Any] = {"RequestType": "InstallEnterpriseApplication"}
    if manifest_url is not None:
        command["ManifestURL"] = manifest_url
        if pinning_certs:
            command["ManifestURLPinningCerts"] = list(pinning_certs)
            command["PinningRevocationCheckRequired"] = revocation_check
    else:
        command["Manifest"] = manifest
    return {"Command": command, "CommandUUID": command_uuid or str(uuid.uuid4()).upper()}


def render(doc: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(doc, indent=2, default=_json_bytes) + "\n"
    return plistlib.dumps(doc, fmt=plistlib.FMT_XML, sort_keys=False).decode("utf-8")


def check_https(url: str, option: str) -> str:
    """macOS fetches manifests and packages over https only; credentials would leak into the command."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise UsageError(f"{option} {url!r}: expected an https:// URL (macOS fetches nothing else)")
    if parts.username or parts.password:
        raise UsageError(f"{option} {url!r}: remove the credentials; use a signed or unguessable URL")
    return url


def read_certificate(path: Path) -> bytes:
    """A certificate for ManifestURLPinningCerts, as DER; PEM files are converted."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"--pin-cert {path}: cannot read it ({exc.strerror})") from None
    match = re.search(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", data, re.S)
    if match:
        try:
            return base64.b64decode(b"".join(match.group(1).split()), validate=True)
        except ValueError:
            raise UsageError(f"--pin-cert {path}: the PEM block is not valid base64") from None
    if data[:1] != b"\x30":
        raise UsageError(f"--pin-cert {path}: not a certificate (expected PEM or DER)")
    return data


def build_manifest(pkg: Path, url: str, *, allow_unsigned: bool = False) -> tuple[dict[str, Any], list[str]]:
    check_https(url, "--url")
    if not pkg.is_file():
        raise UsageError(f"{pkg}: no such package file")
    product, warnings = read_product(pkg, allow_unsigned=allow_unsigned)
    with pkg.open("rb") as fh:
        hashes = chunk_hashes(fh, pkg.stat().st_size)
    return app_manifest(product, url, hashes), warnings


def _json_bytes(value: object) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot encode {type(value).__name__}")
