"""Load a manifest from bytes into a validated `Manifest`, reporting every problem at once.

Two spellings, one model. InstallApplications' bootstrap.json loads as InstallApplications runs it,
quirks included, with warnings where a quirk deserves one; the native YAML format is strict. Each
problem is one line: `source:line:col: userland[2] "Dock setup" → hash: expected 64 hex digits, got 63`.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urljoin, urlsplit

from bootstrapper.errors import ManifestError, UsageError
from bootstrapper.hashing import is_sha256
from bootstrapper.manifest import fields as F
from bootstrapper.manifest.model import (
    AllOf,
    AnyOf,
    Arch,
    Condition,
    FailPolicy,
    FinalAction,
    Format,
    Item,
    Kind,
    Loaded,
    Manifest,
    Model,
    OnFailure,
    OSVersion,
    PathExists,
    Predicate,
    Problem,
    Script,
    Settings,
    Stage,
)
from bootstrapper.manifest.source import Node, SourceError, parse
from bootstrapper.paths import INSTALL_DIR
from bootstrapper.text import one_line

SUPPORTED_FORMAT = 1
#: How long a `wait` item waits when it names no timeout.
DEFAULT_WAIT_TIMEOUT = 900.0
_OS_VERSION = re.compile(r"\s*(>=|<=|==|!=|>|<)\s*(\d+(?:\.\d+)*)\s*")
_MAX_NAME_BYTES = 255
_MAX_PATH_BYTES = 1024


@dataclass
class _Report:
    source: str
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def error(self, node: Node | None, crumb: str, message: str) -> None:
        self.errors.append(self._problem(node, crumb, message))

    def warn(self, node: Node | None, crumb: str, message: str) -> None:
        self.warnings.append(self._problem(node, crumb, message))

    def field_error(self, node: Node | None, path: str, message: str) -> None:
        """`path` ends with the key: `userland[0] "a" → retries` reports `… → retries: message`."""
        head, _, key = path.rpartition(" → ")
        self.error(node, head, f"{key}: {message}")

    def _problem(self, node: Node | None, crumb: str, message: str) -> Problem:
        line, col = (node.line, node.col) if node is not None else (0, 0)
        text = f"{crumb} → {message}" if crumb else message
        return Problem(self.source, line, col, " ".join(text.splitlines()))

    @staticmethod
    def sort(found: list[Problem]) -> list[Problem]:
        return sorted(found, key=lambda p: (p.line, p.col))

    def failure(self) -> ManifestError:
        errors = self.sort(self.errors)
        err = ManifestError([str(p) for p in errors], self.source, errors)
        err.warnings = self.sort(self.warnings)
        return err


@dataclass
class _Context:
    report: _Report
    fmt: Format
    location: str | None
    local: bool
    allow_http: bool
    settings: Settings = field(default_factory=Settings)
    used_http: bool = False
    outside_install_dir: list[str] = field(default_factory=list)

    @property
    def native(self) -> bool:
        return self.fmt is Format.NATIVE

    def strict_field(self, node: Node | None, path: str, message: str) -> None:
        head, _, key = path.rpartition(" → ")
        self.strict(node, head, f"{key}: {message}")

    def strict(self, node: Node | None, crumb: str, message: str) -> None:
        """An error in the native format, a warning in InstallApplications' (which runs it anyway)."""
        if self.native:
            self.report.error(node, crumb, message)
        else:
            self.report.warn(node, crumb, message)


def load_file(path: Path, *, allow_http: bool = False, display: str | None = None) -> Loaded:
    """Read and load a manifest on disk; relative URLs resolve against its folder."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{display or path}: no such file; check the manifest path") from None
    except IsADirectoryError:
        raise UsageError(f"{display or path}: is a folder; give the manifest file") from None
    except OSError as exc:
        raise UsageError(f"{display or path}: cannot read it ({exc.strerror})") from None
    return load_bytes(
        data, display or str(path), location=path.resolve().as_uri(), local=True, allow_http=allow_http
    )


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
    report = _Report(source)
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
    fmt = Format.NATIVE if native else Format.IA
    ctx = _Context(report, fmt, location, local, allow_http)
    manifest = _manifest(root, ctx, source)
    if report.errors:
        raise report.failure()
    return Loaded(manifest, tuple(report.sort(report.warnings)))


def _manifest(root: Node, ctx: _Context, source: str) -> Manifest:
    report = ctx.report
    top: dict[str, Node] = root.value
    fmt_key = "native" if ctx.native else "ia"
    known = {f.name for f in F.TOP_FIELDS if fmt_key in f.formats}
    for key, key_node in root.keys.items():
        if key not in known:
            _unknown(ctx, key_node, "", key, [f.name for f in F.TOP_FIELDS], "top-level key")
    on_failure, final_action = OnFailure.RETRY, FinalAction.NONE
    if ctx.native:
        _format_version(top, root, report)
        if "settings" in top:
            ctx.settings = _settings(top["settings"], ctx)
        if "on_failure" in top:
            on_failure = OnFailure(_enum(top["on_failure"], "on_failure", ctx, OnFailure.RETRY.value))
        if "final_action" in top:
            final_action = FinalAction(
                _enum(top["final_action"], "final_action", ctx, FinalAction.NONE.value)
            )
    if ctx.allow_http or ctx.settings.allow_http:
        ctx.allow_http = True
        report.warn(top.get("settings"), "", "http:// downloads are allowed: they are not protected by TLS")
    items: list[Item] = []
    for stage in Stage:
        node = top.get(stage.value)
        if node is None:
            continue
        if node.value is None and not ctx.native:
            report.warn(node, stage.value, "null; treated as an empty list")
            continue
        if not node.is_seq:
            report.error(node, stage.value, f"expected a list of items, got {_describe(node)}")
            continue
        for index, item_node in enumerate(node.value):
            item = _item(item_node, stage, index, ctx)
            if item is not None:
                items.append(item)
    _unique_names(items, top, ctx)
    if ctx.outside_install_dir:
        first = ctx.outside_install_dir[0]
        report.warn(
            None,
            "",
            f"{len(ctx.outside_install_dir)} item file(s) are outside {INSTALL_DIR} (e.g. {first}); "
            "they are used as given",
        )
    if not items and not report.errors:
        report.warn(root, "", "the manifest lists no items; the run will only clean up")
    return Manifest(source, ctx.fmt, tuple(items), ctx.settings, on_failure, final_action)


def _format_version(top: dict[str, Node], root: Node, report: _Report) -> None:
    node = top.get("format")
    if node is None:
        report.error(
            root,
            "",
            f"format: missing; add `format: {SUPPORTED_FORMAT}` at the top (or give an InstallApplications "
            "bootstrap.json)",
        )
    elif not isinstance(node.value, int) or isinstance(node.value, bool):
        report.error(node, "", f"format: expected the number {SUPPORTED_FORMAT}, got {_describe(node)}")
    elif node.value != SUPPORTED_FORMAT:
        report.error(
            node,
            "",
            f"format: version {node.value} is not supported: "
            f"this bootstrapper reads format {SUPPORTED_FORMAT}",
        )


def _settings(node: Node, ctx: _Context) -> Settings:
    if not node.is_map:
        ctx.report.error(node, "settings", f"expected a mapping, got {_describe(node)}")
        return Settings()
    defined = {f.name: f for f in F.SETTINGS_FIELDS}
    for key, key_node in node.keys.items():
        if key not in defined:
            _unknown(ctx, key_node, "settings", key, list(defined), "setting")
    values: dict[str, Any] = {}
    for key, value in node.value.items():
        if key in defined:
            values[key] = _typed(value, defined[key], f"settings → {key}", ctx)
    values = {k: v for k, v in values.items() if v is not None}
    if "fail_policy" in values:
        values["fail_policy"] = FailPolicy(values["fail_policy"])
    return Settings(**values)


def _item(node: Node, stage: Stage, index: int, ctx: _Context) -> Item | None:
    report = ctx.report
    crumb = f"{stage.value}[{index}]"
    if not node.is_map:
        report.error(node, crumb, f"expected a mapping (an item), got {_describe(node)}")
        return None
    values: dict[str, Node] = node.value
    name_node = values.get("name")
    if name_node is not None and isinstance(name_node.value, str) and name_node.value.strip():
        name = name_node.value
        crumb = f'{crumb} "{one_line(name, None)}"'
    else:
        name = ""
        if name_node is None:
            report.error(node, crumb, "name: missing; every item needs a name")
        else:
            report.error(name_node, crumb, f"name: expected a non-empty text, got {_describe(name_node)}")
    allowed = F.item_fields("native" if ctx.native else "ia")
    for key, key_node in node.keys.items():
        if key not in allowed:
            _unknown(ctx, key_node, crumb, key, [f.name for f in F.ITEM_FIELDS], "key")
    if "parallel_group" in values:
        report.warn(values["parallel_group"], crumb, "parallel_group: ignored; items run in manifest order")

    kind = _kind(values, node, crumb, ctx)
    if kind is None:
        return None
    fail = False
    if kind.runs_as_user and stage is not Stage.USERLAND:
        report.error(
            values["type"],
            crumb,
            f"type: {kind.value} items run as the logged-in user and belong in userland, not {stage.value}",
        )
        fail = True
    if stage is Stage.PREFLIGHT and kind is not Kind.ROOTSCRIPT and not kind.runs_as_user:
        if ctx.native:
            report.error(values["type"], crumb, f"type: preflight holds root scripts only, not {kind.value}")
            fail = True
        else:
            report.warn(
                values["type"], crumb, f"type: preflight runs root scripts only; this {kind.value} is ignored"
            )
            return None

    typed: dict[str, Any] = {}
    for key, value_node in values.items():
        if key in allowed and key not in ("name", "type", "url", "hash", "file", "path"):
            typed[key] = _typed(value_node, allowed[key], f"{crumb} → {key}", ctx)

    url = _url(values, node, kind, crumb, ctx)
    digest = _hash(values, node, kind, crumb, ctx)
    file = _file(values, node, kind, stage, url, crumb, ctx)
    wait_path = _wait_path(values, node, kind, crumb, ctx)

    packageid = typed.get("packageid") or None
    version = typed.get("version") or None
    required = bool(typed.get("required") or typed.get("pkg_required"))
    if kind is Kind.PACKAGE and not required and (packageid is None or version is None):
        missing = "packageid" if packageid is None else "version"
        ctx.strict(
            values.get(missing, node),
            crumb,
            f"{missing}: needed to tell whether the package is installed; "
            "add it, or set `required: true` to install it every time",
        )
    donotwait = bool(typed.get("donotwait"))
    if donotwait and not kind.is_script:
        ctx.strict(
            values["donotwait"], crumb, f"donotwait: only scripts can run in the background, not {kind.value}"
        )
        donotwait = False
    for key in ("arguments",):
        if key in typed and not kind.is_script:
            report.error(values[key], crumb, f"{key}: only scripts take arguments, not {kind.value}")
    if kind is not Kind.PACKAGE:
        for key in ("packageid", "version"):
            if typed.get(key):
                report.warn(values[key], crumb, f"{key}: only packages have one; ignored")
    timeout = typed.get("timeout", ctx.settings.timeout)
    if kind is Kind.WAIT and timeout is None:
        timeout = DEFAULT_WAIT_TIMEOUT
    if fail or name == "":
        return None
    return Item(
        stage=stage,
        index=index,
        name=name,
        kind=kind,
        url=url,
        hash=digest,
        file=file,
        size=typed.get("size"),
        packageid=packageid if kind is Kind.PACKAGE else None,
        version=version if kind is Kind.PACKAGE else None,
        required=required,
        donotwait=donotwait,
        retries=_default(typed.get("retries"), ctx.settings.retries),
        retrywait=float(_default(typed.get("retrywait"), ctx.settings.retrywait)),
        fail_policy=FailPolicy(typed.get("fail_policy") or ctx.settings.fail_policy),
        timeout=float(timeout) if timeout is not None else None,
        skip_if=typed.get("skip_if"),
        only_if=typed.get("only_if"),
        arguments=tuple(typed.get("arguments") or ()),
        path=wait_path,
        line=node.line,
    )


def _default(value: Any, default: Any) -> Any:
    return default if value is None else value


def _kind(values: dict[str, Node], node: Node, crumb: str, ctx: _Context) -> Kind | None:
    type_node = values.get("type")
    if type_node is None:
        ctx.report.error(node, crumb, f"type: missing; one of {_choices([k.value for k in Kind])}")
        return None
    raw = type_node.value
    try:
        return Kind(raw)
    except ValueError:
        hint = _suggest(str(raw), [k.value for k in Kind])
        ctx.report.error(
            type_node,
            crumb,
            f"type: {_show(raw)} is not an item type; "
            f"expected one of {_choices([k.value for k in Kind])}{hint}",
        )
        return None


def _url(values: dict[str, Node], item_node: Node, kind: Kind, crumb: str, ctx: _Context) -> str | None:
    node = values.get("url")
    if not kind.downloads:
        if node is not None:
            ctx.report.error(node, crumb, "url: a wait item downloads nothing; remove it")
        return None
    if node is None:
        ctx.report.error(item_node, crumb, "url: missing; where is it downloaded from?")
        return None
    raw = node.value
    if not isinstance(raw, str) or not raw.strip():
        ctx.report.error(node, crumb, f"url: expected a URL, got {_describe(node)}")
        return None
    if any(unicodedata.category(c) == "Cc" for c in raw):
        ctx.report.error(node, crumb, "url: contains control characters")
        return None
    parts = urlsplit(raw)
    if not parts.scheme:
        if ctx.location is None:
            ctx.report.error(
                node,
                crumb,
                f"url: {_show(raw)} is relative, but the manifest has no location to resolve it against",
            )
            return None
        raw = urljoin(ctx.location, raw)
        parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if parts.username is not None or parts.password is not None:
        ctx.report.error(
            node,
            crumb,
            "url: credentials inside URLs are refused (they end up in logs); "
            "send them as headers from the settings",
        )
        return None
    if scheme == "https":
        pass
    elif scheme == "http":
        if not ctx.allow_http:
            ctx.report.error(
                node,
                crumb,
                "url: http:// is refused; use https://, or allow it for a lab with "
                "`settings: allow_http: true` or --allow-http",
            )
            return None
        ctx.used_http = True
    elif scheme == "file":
        if not ctx.local:
            ctx.report.error(
                node, crumb, "url: file:// URLs are allowed only in a manifest read from this machine"
            )
            return None
        return raw
    else:
        ctx.report.error(node, crumb, f"url: scheme {scheme!r} is not supported; use https://")
        return None
    if not parts.hostname:
        ctx.report.error(node, crumb, f"url: {_show(raw)} has no host")
        return None
    return raw


def _hash(values: dict[str, Node], node: Node, kind: Kind, crumb: str, ctx: _Context) -> str | None:
    hnode = values.get("hash")
    if not kind.downloads:
        if hnode is not None:
            ctx.report.error(hnode, crumb, "hash: a wait item downloads nothing; remove it")
        return None
    if hnode is None:
        ctx.strict(
            node,
            crumb,
            "hash: missing; add the file's sha256 (`shasum -a 256 FILE`)"
            + ("" if ctx.native else ": without one the item is refused at run time"),
        )
        return None
    problem = _sha256_problem(hnode.value)
    if problem is None:
        return str(hnode.value).strip().lower().removeprefix("sha256:")
    ctx.strict(
        hnode,
        crumb,
        f"hash: {problem}"
        + ("" if ctx.native else "; the item is refused at run time until it has a real sha256"),
    )
    return None


def _sha256_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"expected 64 hex digits (sha256), got {type(value).__name__}"
    text = value.strip().lower()
    text = text.removeprefix("sha256:")
    if not text:
        return "empty; expected 64 hex digits (sha256)"
    if is_sha256(text):
        return None
    if re.fullmatch(r"[0-9a-f]*", text):
        return f"expected 64 hex digits, got {len(text)}"
    return f"expected 64 hex digits (sha256), got {_show(value)}"


def _file(
    values: dict[str, Node],
    node: Node,
    kind: Kind,
    stage: Stage,
    url: str | None,
    crumb: str,
    ctx: _Context,
) -> PurePosixPath | None:
    fnode = values.get("file")
    if not kind.downloads:
        if fnode is not None:
            ctx.report.error(
                fnode, crumb, "file: a wait item places no file; use `path` for what it waits for"
            )
        return None
    if fnode is None:
        if kind in (Kind.ROOTFILE, Kind.USERFILE):
            ctx.report.error(node, crumb, "file: missing; where on the Mac should the file be placed?")
            return None
        if not ctx.native:
            ctx.report.error(node, crumb, "file: missing; InstallApplications needs a path for every item")
            return None
        if url is None:
            return None
        basename = PurePosixPath(urlsplit(url).path).name or "item"
        return INSTALL_DIR / stage.value / basename
    path = _checked_path(fnode, "file", crumb, ctx)
    if path is None:
        return None
    if not path.is_absolute():
        if ctx.native:
            ctx.report.error(fnode, crumb, f"file: {_show(fnode.value)} must be an absolute path")
            return None
        path = INSTALL_DIR / path
    if kind in (Kind.PACKAGE, Kind.ROOTSCRIPT, Kind.USERSCRIPT) and not path.is_relative_to(INSTALL_DIR):
        if ctx.native:
            ctx.report.error(
                fnode,
                crumb,
                f"file: packages and scripts are kept under {INSTALL_DIR} (root-owned, removed at the end); "
                f"got {_show(str(path))}",
            )
            return None
        ctx.outside_install_dir.append(str(path))
    return path


def _wait_path(values: dict[str, Node], node: Node, kind: Kind, crumb: str, ctx: _Context) -> str | None:
    pnode = values.get("path")
    if kind is not Kind.WAIT:
        if pnode is not None:
            ctx.report.error(pnode, crumb, f"path: only wait items have one; {kind.value} items use `file`")
        return None
    if pnode is None:
        ctx.report.error(node, crumb, "path: missing; a wait item waits for this path to exist")
        return None
    path = _checked_path(pnode, "path", crumb, ctx)
    if path is not None and not path.is_absolute():
        ctx.report.error(pnode, crumb, f"path: {_show(pnode.value)} must be an absolute path")
        return None
    return str(path) if path is not None else None


def _checked_path(node: Node, key: str, crumb: str, ctx: _Context) -> PurePosixPath | None:
    raw = node.value
    if not isinstance(raw, str) or not raw:
        ctx.report.error(node, crumb, f"{key}: expected a path, got {_describe(node)}")
        return None
    if "\x00" in raw or any(unicodedata.category(c) == "Cc" for c in raw):
        ctx.report.error(node, crumb, f"{key}: contains NUL or control characters")
        return None
    parts = raw.split("/")
    if ".." in parts:
        ctx.report.error(node, crumb, f"{key}: {_show(raw)} contains '..'; give the path without it")
        return None
    if any(len(p.encode()) > _MAX_NAME_BYTES for p in parts):
        ctx.report.error(node, crumb, f"{key}: a name in it is longer than {_MAX_NAME_BYTES} bytes")
        return None
    if len(raw.encode()) > _MAX_PATH_BYTES:
        ctx.report.error(node, crumb, f"{key}: longer than {_MAX_PATH_BYTES} bytes")
        return None
    if raw.endswith("/"):
        ctx.report.error(node, crumb, f"{key}: {_show(raw)} names a folder; give a file path")
        return None
    return PurePosixPath(raw)


def _typed(node: Node, spec: F.Field, crumb: str, ctx: _Context) -> Any:
    """Check a value against its field type; report and return None when it does not fit."""
    value = node.value
    report = ctx.report

    def bad(expected: str) -> None:
        report.field_error(node, crumb, f"expected {expected}, got {_describe(node)}")

    if spec.type == "string":
        if node.is_scalar and value is not None:
            return node.raw if node.raw is not None else str(value)
        if value is None:
            return None
        bad("a text")
        return None
    if spec.type == "boolean":
        if isinstance(value, bool):
            return value
        if not ctx.native and isinstance(value, str) and value.lower() in ("true", "false"):
            report.warn(node, crumb, f"{_show(value)} is a text; write true or false without quotes")
            return value.lower() == "true"
        bad("true or false")
        return None
    if spec.type in ("integer", "number"):
        ok = isinstance(value, int) and not isinstance(value, bool)
        if spec.type == "number":
            ok = ok or isinstance(value, float)
        if not ok:
            bad("a whole number" if spec.type == "integer" else "a number")
            return None
        if spec.minimum is not None and value < spec.minimum:
            report.field_error(node, crumb, f"expected a number ≥ {spec.minimum:g}, got {value}")
            return None
        return value
    if spec.type == "enum":
        return _enum(node, crumb, ctx, None, spec.choices)
    if spec.type == "condition":
        return _condition(node, crumb, ctx)
    if spec.type == "strings":
        if node.is_seq and all(v.is_scalar and v.value is not None for v in node.value):
            return [v.raw if v.raw is not None else str(v.value) for v in node.value]
        bad("a list of texts")
        return None
    raise AssertionError(f"unhandled field type {spec.type}")


def _enum(node: Node, crumb: str, ctx: _Context, default: str | None, choices: tuple[str, ...] = ()) -> Any:
    if not choices:
        spec = {f.name: f for f in F.TOP_FIELDS}[crumb]
        choices = spec.choices
    value = node.value
    if isinstance(value, str) and value in choices:
        return value
    hint = _suggest(str(value), list(choices))
    ctx.report.field_error(node, crumb, f"{_show(value)} is not one of {_choices(list(choices))}{hint}")
    return default


def _condition(node: Node, crumb: str, ctx: _Context) -> Condition | None:
    value = node.value
    if isinstance(value, str):
        arch = F.ARCH_WORDS.get(value.strip().lower())
        if arch is None:
            ctx.strict(
                node,
                crumb,
                f"{_show(value)} is not a known condition; the words are {_choices(list(F.ARCH_WORDS))}"
                + ("" if ctx.native else " (ignored, as InstallApplications does)"),
            )
            return None
        return AllOf((Arch(arch),))
    if node.is_map:
        return _all_of(node, crumb, ctx)
    if node.is_seq and node.value:
        branches = [_all_of(b, f"{crumb}[{i}]", ctx) for i, b in enumerate(node.value)]
        if any(b is None for b in branches):
            return None
        return AnyOf(tuple(b for b in branches if b is not None))
    ctx.report.error(
        node,
        crumb,
        f"expected a word such as 'intel', a mapping of tests, or a list of them, got {_describe(node)}",
    )
    return None


def _all_of(node: Node, crumb: str, ctx: _Context) -> AllOf | None:
    if not node.is_map or not node.value:
        ctx.report.error(
            node, crumb, f"expected a mapping of tests ({', '.join(F.CONDITION_KEYS)}), got {_describe(node)}"
        )
        return None
    predicates: list[Predicate] = []
    ok = True
    for key, vnode in node.value.items():
        pred = _predicate(key, vnode, node.keys[key], f"{crumb} → {key}", ctx)
        if pred is None:
            ok = False
        else:
            predicates.append(pred)
    return AllOf(tuple(predicates)) if ok else None


def _predicate(key: str, node: Node, key_node: Node, crumb: str, ctx: _Context) -> Predicate | None:
    report = ctx.report
    value = node.value
    if key not in F.CONDITION_KEYS:
        report.field_error(
            key_node,
            crumb,
            f"not a condition test; expected one of {_choices(list(F.CONDITION_KEYS))}"
            + _suggest(key, list(F.CONDITION_KEYS)),
        )
        return None
    if not isinstance(value, str) or not value.strip():
        report.field_error(node, crumb, f"expected a text, got {_describe(node)}")
        return None
    if key == "arch":
        arch = F.ARCH_WORDS.get(value.strip().lower())
        if arch is None:
            report.field_error(
                node, crumb, f"{_show(value)} is not an architecture; expected arm64 or x86_64"
            )
            return None
        return Arch(arch)
    if key == "os_version":
        match = _OS_VERSION.fullmatch(value)
        if match is None:
            report.field_error(node, crumb, f"expected a comparison such as '>= 14.0', got {_show(value)}")
            return None
        return OSVersion(match.group(1), match.group(2))
    if key == "model":
        return Model(value.strip())
    if key == "path_exists":
        if not value.startswith("/"):
            report.field_error(node, crumb, f"expected an absolute path, got {_show(value)}")
            return None
        return PathExists(value)
    return Script(value)


def _unique_names(items: list[Item], top: dict[str, Node], ctx: _Context) -> None:
    seen: dict[str, Item] = {}
    for item in items:
        first = seen.get(item.name)
        if first is None:
            seen[item.name] = item
            continue
        node = Node(None, item.line, 1) if item.line else None
        ctx.strict(
            node,
            item.label,
            f"name: also used by {first.id}; names must be unique so logs and progress can tell them apart",
        )


def _unknown(ctx: _Context, key_node: Node, crumb: str, key: str, known: list[str], what: str) -> None:
    hint = _suggest(key, known)
    prefix = f"{key}: "
    if key in known:
        ctx.report.warn(
            key_node, crumb, f"{prefix}a native-format key; ignored in an InstallApplications manifest"
        )
        return
    if ctx.native:
        ctx.report.error(key_node, crumb, f"{prefix}unknown {what}{hint}")
    else:
        ctx.report.warn(key_node, crumb, f"{prefix}unknown {what}, ignored{hint}")


def _suggest(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _choices(values: list[str]) -> str:
    return ", ".join(values)


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    # repr escapes what `one_line` escapes, in the same spelling, and quotes the value
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _describe(node: Node) -> str:
    value = node.value
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int):
        return f"{value} (a number)"
    if isinstance(value, float):
        return f"{node.raw or value} (a number)"
    if isinstance(value, str):
        return f"{_show(value)} (a text)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
