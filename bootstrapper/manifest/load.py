"""Load a manifest from bytes into a validated `Manifest`, reporting every problem at once.

Two spellings, one model. InstallApplications' bootstrap.json loads as InstallApplications runs it,
quirks included, with warnings where a quirk deserves one; the native YAML format is strict. This
module reads the top level; `items` reads each item from the key and type tables, `conditions` reads
`skip_if`/`only_if`, and `report` words the problems.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from bootstrapper.errors import UnsafePathError, UsageError
from bootstrapper.manifest import fields as F
from bootstrapper.manifest.items import enum_value, read_item, typed_value
from bootstrapper.manifest.model import (
    FailPolicy,
    FinalAction,
    Format,
    Item,
    Loaded,
    Manifest,
    OnFailure,
    Settings,
    Stage,
)
from bootstrapper.manifest.report import Context, Report, describe
from bootstrapper.manifest.source import MAX_BYTES, Node, SourceError, parse
from bootstrapper.paths import INSTALL_DIR

SUPPORTED_FORMAT = 1
_TOP = {f.name: f for f in F.TOP_FIELDS}
_SETTINGS = {f.name: f for f in F.SETTINGS_FIELDS}


def load_file(
    path: Path, *, allow_http: bool = False, display: str | None = None, trusted: bool = False
) -> Loaded:
    """Read and load a manifest on disk; relative URLs resolve against its folder.

    `trusted` is for the daemon, which acts as root on what the manifest says: the file is read
    through `open_trusted`, so one another user owns, can write, or reaches through a planted
    symlink or hard link is refused instead of obeyed.
    """
    shown = display or str(path)
    data = read_file(path, shown, trusted=trusted)
    return load_bytes(data, shown, location=path.resolve().as_uri(), local=True, allow_http=allow_http)


def read_file(path: Path, shown: str, *, trusted: bool = False) -> bytes:
    """A manifest's (or its signature's) bytes from disk: a regular file within the size limit; with
    `trusted`, only one nobody but root (or us) could have written (see `load_file`)."""
    data = _read_trusted(path, shown) if trusted else _read_capped(path, shown)
    if len(data) > MAX_BYTES:
        report = Report(shown)
        report.error(None, "", f"the manifest is over {MAX_BYTES} bytes, the limit (4 MiB)")
        raise report.failure()
    return data


def _read_trusted(path: Path, shown: str) -> bytes:
    """`_read_capped` through a descriptor `open_trusted` checked (owner, mode, links, folders)."""
    from bootstrapper.safefile import open_trusted

    try:
        fd = open_trusted(os.path.abspath(path))
    except UnsafePathError as exc:
        raise UsageError(f"{shown}: {exc.why}") from None
    with os.fdopen(fd, "rb") as f:
        try:
            return f.read(MAX_BYTES + 1)
        except OSError as exc:
            raise UsageError(f"{shown}: cannot read it ({exc.strerror})") from None


def _read_capped(path: Path, shown: str) -> bytes:
    """At most MAX_BYTES + 1 bytes of a regular file: a device (/dev/zero) or a FIFO is refused, not
    read until memory runs out or a writer comes (opened non-blocking, so a FIFO cannot hang us)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise UsageError(f"{shown}: no such file; check the manifest path") from None
    except IsADirectoryError:
        raise UsageError(f"{shown}: is a folder; give the manifest file") from None
    except OSError as exc:
        raise UsageError(f"{shown}: cannot read it ({exc.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise UsageError(f"{shown}: is a folder; give the manifest file")
        raise UsageError(f"{shown}: not a regular file (a device, FIFO or socket); give the manifest file")
    with os.fdopen(fd, "rb") as f:
        try:
            return f.read(MAX_BYTES + 1)
        except OSError as exc:
            raise UsageError(f"{shown}: cannot read it ({exc.strerror})") from None


def load_bytes(
    data: bytes,
    source: str,
    *,
    location: str | None = None,
    local: bool = False,
    allow_http: bool = False,
) -> Loaded:
    """Validate `data`; raise `ManifestError` with every problem, or return the manifest and warnings.

    `location` is the manifest's own URL (a file:// URL for a local file): relative item URLs resolve
    against it. `local` says the manifest came from this machine, which alone permits file:// items.
    """
    report = Report(source)
    try:
        parsed = parse(data)
    except SourceError as exc:
        report.error(Node(None, exc.line, exc.col), "", exc.message)
        raise report.failure() from None
    for problem in parsed.problems:
        report.error(Node(None, problem.line, problem.col), "", problem.message)
    root = parsed.root
    if not root.is_map:
        report.error(root, "", "expected a mapping with the stages preflight, setupassistant and userland")
        raise report.failure()
    native = "format" in root.value or not parsed.is_json
    ctx = Context(report, Format.NATIVE if native else Format.IA, location, local, allow_http)
    manifest = _manifest(root, ctx, source)
    if report.errors:
        raise report.failure()
    return Loaded(manifest, tuple(report.sort(report.warnings)))


def _manifest(root: Node, ctx: Context, source: str) -> Manifest:
    top: dict[str, Node] = root.value
    known = {name for name, f in _TOP.items() if (F.NATIVE if ctx.native else F.IA) in f.formats}
    for key, key_node in root.keys.items():
        if key not in known:
            ctx.unknown(key, key_node, "", list(_TOP), what="top-level key")
    on_failure, final_action = _native_top(root, ctx) if ctx.native else (OnFailure.RETRY, FinalAction.NONE)
    if ctx.allow_http or ctx.settings.allow_http:
        ctx.allow_http = True
        ctx.report.warn(
            top.get("settings"), "", "http:// downloads are allowed: they are not protected by TLS"
        )
    items = [item for stage in Stage for item in _stage(top.get(stage.value), stage, ctx)]
    _unique_names(items, ctx)
    if ctx.outside_install_dir:
        ctx.report.warn(
            None,
            "",
            f"{len(ctx.outside_install_dir)} item file(s) are outside {INSTALL_DIR} "
            f"(e.g. {ctx.outside_install_dir[0]}); they are used as given",
        )
    if not items and not ctx.report.errors:
        ctx.report.warn(root, "", "the manifest lists no items; the run will only clean up")
    return Manifest(source, ctx.fmt, tuple(items), ctx.settings, on_failure, final_action)


def _native_top(root: Node, ctx: Context) -> tuple[OnFailure, FinalAction]:
    """`format`, `settings` (into ctx), `on_failure` and `final_action`: what only the native format has."""
    top: dict[str, Node] = root.value
    _format_version(top.get("format"), root, ctx.report)
    if "settings" in top:
        ctx.settings = _settings(top["settings"], ctx)
    on_failure, final_action = OnFailure.RETRY, FinalAction.NONE
    if "on_failure" in top:
        on_failure = OnFailure(
            enum_value(top["on_failure"], "on_failure", ctx, _TOP["on_failure"].choices, "retry")
        )
    if "final_action" in top:
        final_action = FinalAction(
            enum_value(top["final_action"], "final_action", ctx, _TOP["final_action"].choices, "none")
        )
    return on_failure, final_action


def _format_version(node: Node | None, root: Node, report: Report) -> None:
    if node is None:
        report.error(
            root,
            "",
            f"format: missing; add `format: {SUPPORTED_FORMAT}` at the top (or give an InstallApplications "
            "bootstrap.json)",
        )
    elif not isinstance(node.value, int) or isinstance(node.value, bool):
        report.error(node, "", f"format: expected the number {SUPPORTED_FORMAT}, got {describe(node)}")
    elif node.value != SUPPORTED_FORMAT:
        report.error(
            node,
            "",
            f"format: version {node.value} is not supported: "
            f"this bootstrapper reads format {SUPPORTED_FORMAT}",
        )


def _settings(node: Node, ctx: Context) -> Settings:
    if not node.is_map:
        ctx.report.error(node, "settings", f"expected a mapping, got {describe(node)}")
        return Settings()
    for key, key_node in node.keys.items():
        if key not in _SETTINGS:
            ctx.unknown(key, key_node, "settings", list(_SETTINGS), what="setting")
    values: dict[str, Any] = {
        key: typed_value(value, _SETTINGS[key], f"settings → {key}", ctx)
        for key, value in node.value.items()
        if key in _SETTINGS
    }
    values = {k: v for k, v in values.items() if v is not None}
    if "fail_policy" in values:
        values["fail_policy"] = FailPolicy(values["fail_policy"])
    return Settings(**values)


def _stage(node: Node | None, stage: Stage, ctx: Context) -> list[Item]:
    if node is None:
        return []
    if node.value is None and not ctx.native:
        ctx.report.warn(node, stage.value, "null; treated as an empty list")
        return []
    if not node.is_seq:
        ctx.report.error(node, stage.value, f"expected a list of items, got {describe(node)}")
        return []
    found = (read_item(item_node, stage, index, ctx) for index, item_node in enumerate(node.value))
    return [item for item in found if item is not None]


def _unique_names(items: list[Item], ctx: Context) -> None:
    seen: dict[str, Item] = {}
    for item in items:
        first = seen.setdefault(item.name, item)
        if first is not item:
            ctx.strict(
                Node(None, item.line, 1) if item.line else None,
                item.label,
                f"name: also used by {first.id}; names must be unique so logs and progress can tell them "
                "apart",
            )
