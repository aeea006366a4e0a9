"""Deep checks: download every item of a manifest and check it is what the manifest says.

Catches what a syntax check cannot: a hash copied from the wrong build, a size that drifted, a
package whose identifier or version differs from the manifest's `packageid`/`version`. Files go to
a temporary folder that is removed afterwards; nothing is installed. For a wrong hash the actual one
is printed, ready to paste into the manifest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from bootstrapper.errors import (
    ClientStatusError,
    FetchError,
    HashMismatchError,
    IntegrityError,
    PackageError,
    UnsafeURLError,
)
from bootstrapper.fetch import Download, Downloader, FetchEvent, FetchOptions
from bootstrapper.hashing import sha256_file
from bootstrapper.manifest.kinds import SPECS
from bootstrapper.manifest.model import Item, Manifest

#: Validation honours each item's `retries`/`retrywait`, capped: an admin waits at the terminal, and a
#: flaky server should show up as flaky rather than be hidden by ten minutes of patience.
MAX_RETRIES = 3
MAX_RETRYWAIT = 2.0


@dataclass
class ItemCheck:
    """What one item turned out to be."""

    item: Item
    size: int | None = None
    sha256: str | None = None
    #: Problems that make the manifest wrong (exit 2).
    mismatches: list[str] = field(default_factory=list)
    #: Failures that say nothing about the manifest (the network), exit 1.
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.errors


async def check_items(
    manifest: Manifest,
    options: FetchOptions,
    workdir: Path,
    on_event: Callable[[FetchEvent], None] = lambda _e: None,
) -> list[ItemCheck]:
    """Fetch every downloadable item into `workdir` and compare it with the manifest."""
    checks: dict[str, ItemCheck] = {}
    downloads: list[Download] = []
    for n, item in enumerate(i for i in manifest.items if SPECS[i.type].downloads and i.url):
        check = checks[item.id] = ItemCheck(item)
        if not item.hash:
            check.mismatches.append("no hash in the manifest")
            continue
        assert item.url is not None
        if urlsplit(item.url).scheme == "file":
            await asyncio.to_thread(_check_local, check, Path(unquote(urlsplit(item.url).path)))
            continue
        name = PurePosixPath(urlsplit(item.url).path).name or "item"
        dest = workdir / "items" / f"{n:03d}-{name}"
        downloads.append(
            Download(
                item.id,
                item.url,
                dest,
                item.hash,
                item.size,
                0o600,
                {},
                min(item.retries, MAX_RETRIES),
                min(item.retrywait, MAX_RETRYWAIT),
            )
        )
    async with Downloader(options, workdir / "staging", on_event) as d:
        results = await d.fetch_all(downloads)
    for key, result in results.items():
        check = checks[key]
        if isinstance(result, Path):
            check.size = result.stat().st_size
            check.sha256 = check.item.hash
            if SPECS[check.item.type].has_receipt:
                await asyncio.to_thread(_check_package, check, result)
        else:
            _record_failure(check, result)
    return list(checks.values())


def _record_failure(check: ItemCheck, error: FetchError) -> None:
    if isinstance(error, HashMismatchError):
        check.sha256 = error.actual
        check.mismatches.append(f"sha256 is {error.actual}, the manifest says {error.expected}")
    elif isinstance(error, IntegrityError | ClientStatusError | UnsafeURLError):
        check.mismatches.append(str(error))
    else:
        check.errors.append(str(error))


def _check_local(check: ItemCheck, path: Path) -> None:
    """A file:// item of a local manifest: hash it where it is."""
    try:
        check.size, check.sha256 = path.stat().st_size, sha256_file(path, follow_symlinks=True)
    except OSError as exc:
        check.mismatches.append(f"{path}: {exc.strerror or exc}")
        return
    size = check.size
    if check.item.size is not None and size != check.item.size:
        check.mismatches.append(f"size is {size}, the manifest says {check.item.size}")
    if check.sha256 != check.item.hash:
        check.mismatches.append(f"sha256 is {check.sha256}, the manifest says {check.item.hash}")
    elif SPECS[check.item.type].has_receipt:
        _check_package(check, path)


def _check_package(check: ItemCheck, path: Path) -> None:
    """Compare the package's own identifier and version with `packageid` and `version`."""
    item = check.item
    if not item.packageid and not item.version:
        return
    try:
        from bootstrapper.flatpkg import read_package
    except ImportError:
        check.notes.append("package contents not checked: the flat-package reader is not available")
        return
    try:
        facts = read_package(path)
    except PackageError as exc:
        check.mismatches.append(f"not a readable package: {exc}")
        return
    versions = {c.info.identifier: c.info.version for c in facts.components}
    if item.packageid and item.packageid not in versions:
        found = ", ".join(sorted(versions)) or "none"
        check.mismatches.append(f"packageid {item.packageid!r} is not in the package (it has: {found})")
    elif item.version:
        actual = versions[item.packageid] if item.packageid else None
        if actual is None and len(versions) == 1:
            actual = next(iter(versions.values()))
        if actual is not None and actual != item.version:
            check.mismatches.append(f"version is {actual!r}, the manifest says {item.version!r}")
