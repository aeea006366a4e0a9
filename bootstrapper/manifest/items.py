"""Read one item: the key table (`fields`) says what each key holds, the type table (`kinds`) which
keys a type takes, needs and where it may stand; this module only applies the two tables.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit

from bootstrapper.hashing import is_sha256
from bootstrapper.manifest import conditions
from bootstrapper.manifest import fields as F
from bootstrapper.manifest.kinds import SPECS, TYPE_KEYS, ItemType, KindSpec
from bootstrapper.manifest.model import FailPolicy, Item, Stage
from bootstrapper.manifest.report import Context, choices, cut, describe, show, suggest
from bootstrapper.manifest.source import Node
from bootstrapper.paths import INSTALL_DIR
from bootstrapper.text import hidden, one_line

_MAX_NAME_BYTES = 255
#: Characters of an item's name shown in messages; a longer name is cut.
_NAME_SHOWN = 60
_MAX_PATH_BYTES = 1024
#: Keys read by their own rules below rather than by their field type.
_OWN_RULES = frozenset({"name", "type", "url", "hash", "file", "path"})
_TYPES = [t.value for t in SPECS]


@dataclass(frozen=True)
class _Draft:
    """The item being read, as the per-key rules need to see it."""

    node: Node
    values: dict[str, Node]
    spec: KindSpec
    stage: Stage
    crumb: str
    ctx: Context

    def error(self, node: Node, message: str) -> None:
        self.ctx.report.error(node, self.crumb, message)


def read_item(node: Node, stage: Stage, index: int, ctx: Context) -> Item | None:
    """The item at `stage[index]`, or None when it has errors (all of them reported)."""
    crumb = f"{stage.value}[{index}]"
    if not node.is_map:
        ctx.report.error(node, crumb, f"expected a mapping (an item), got {describe(node)}")
        return None
    values: dict[str, Node] = node.value
    name, crumb = _name(node, crumb, ctx)
    allowed = F.item_fields(F.NATIVE if ctx.native else F.IA)
    for key, key_node in node.keys.items():
        if key not in allowed:
            ctx.unknown(key, key_node, crumb, [f.name for f in F.ITEM_FIELDS], what="key")
    if "parallel_group" in values:
        ctx.report.warn(
            values["parallel_group"], crumb, "parallel_group: ignored; items run in manifest order"
        )
    spec = _spec(node, crumb, ctx)
    if spec is None:
        _untyped(node, stage, crumb, ctx, allowed)
        return None
    placed = _placed(spec, stage, values["type"], crumb, ctx)
    if placed is None:
        return None
    d = _Draft(node, values, spec, stage, crumb, ctx)
    typed = {
        key: typed_value(value, allowed[key], f"{crumb} → {key}", ctx)
        for key, value in values.items()
        if key in allowed and key not in _OWN_RULES
    }
    url = _url(d)
    digest, file, wait_path = _hash(d), _file(d, url), _wait_path(d)
    required = bool(typed.get("required") or typed.get("pkg_required"))
    _receipt(d, typed, required)
    _elsewhere(d, allowed)
    _trust_keys(d, typed)
    if not placed or not name:
        return None
    mine = {k: v for k, v in typed.items() if k not in TYPE_KEYS or k in spec.keys}
    settings = ctx.settings
    timeout = _default(mine.get("timeout"), settings.timeout, spec.default_timeout)
    return Item(
        stage=stage,
        index=index,
        name=name,
        type=spec.type,
        url=url,
        hash=digest,
        file=file,
        size=mine.get("size"),
        packageid=mine.get("packageid") or None,
        version=mine.get("version") or None,
        required=required,
        donotwait=bool(mine.get("donotwait")),
        retries=_default(mine.get("retries"), settings.retries),
        retrywait=float(_default(mine.get("retrywait"), settings.retrywait)),
        fail_policy=FailPolicy(mine.get("fail_policy") or settings.fail_policy),
        timeout=float(timeout) if timeout is not None else None,
        skip_if=mine.get("skip_if"),
        only_if=mine.get("only_if"),
        arguments=tuple(mine.get("arguments") or ()),
        path=wait_path,
        team_id=mine.get("team_id") or None,
        secrets=tuple(mine.get("secrets") or ()),
        line=node.line,
    )


def _untyped(node: Node, stage: Stage, crumb: str, ctx: Context, allowed: dict[str, F.Field]) -> None:
    """Check what reads the same for every type, so that a wrong `type` does not hide the other errors."""
    values: dict[str, Node] = node.value
    for key, value in values.items():
        if key in allowed and key not in _OWN_RULES:
            typed_value(value, allowed[key], f"{crumb} → {key}", ctx)
    # Any downloading type reads url, hash and file alike; a missing one is not reported without a type.
    d = _Draft(node, values, SPECS[ItemType.ROOTSCRIPT], stage, crumb, ctx)
    if "url" in values:
        _url(d)
    if "hash" in values:
        _hash(d)
    for key in ("file", "path"):
        if key in values:
            _checked_path(values[key], key, d)


def _default(*values: Any) -> Any:
    """The first value given: the item's own, then the settings', then the type's."""
    return next((v for v in values if v is not None), None)


def label(item_id: str, name: str) -> str:
    """An item as messages name it, `userland[2] "Dock setup"`: the name made one line, a long one cut."""
    return f'{item_id} "{one_line(name, _NAME_SHOWN)}"'


def _name(node: Node, crumb: str, ctx: Context) -> tuple[str, str]:
    """The item's name and its breadcrumb (`userland[2] "Dock setup"`); "" when it has none."""
    name_node = node.value.get("name")
    if name_node is not None and isinstance(name_node.value, str) and name_node.value.strip():
        labelled = label(crumb, name_node.value)
        disguise = hidden(name_node.value)
        if disguise:
            ctx.report.error(
                name_node,
                labelled,
                f"name: contains {', '.join(disguise[:5])}: control, bidi or zero-width characters, "
                "which can disguise what a step is; remove them",
            )
            return "", labelled
        ctx.names[crumb] = name_node
        return name_node.value, labelled
    if name_node is None:
        ctx.report.error(node, crumb, "name: missing; every item needs a name")
    else:
        ctx.report.error(name_node, crumb, f"name: expected a non-empty text, got {describe(name_node)}")
    return "", crumb


def _spec(node: Node, crumb: str, ctx: Context) -> KindSpec | None:
    type_node = node.value.get("type")
    if type_node is None:
        ctx.report.error(node, crumb, f"type: missing; one of {choices(_TYPES)}")
        return None
    raw = type_node.value
    if isinstance(raw, str) and raw in _TYPES:
        return SPECS[ItemType(raw)]
    if isinstance(raw, str):
        message = f"{show(raw)} is not an item type; expected one of {choices(_TYPES)}{suggest(raw, _TYPES)}"
    else:
        message = f"expected one of {choices(_TYPES)}, got {describe(type_node)}"
    ctx.report.error(type_node, crumb, f"type: {message}")
    return None


def _placed(spec: KindSpec, stage: Stage, type_node: Node, crumb: str, ctx: Context) -> bool | None:
    """Whether the type may stand in `stage`: None when the item is to be dropped without a word more."""
    if stage in spec.stages:
        return True
    name = spec.type.value
    if spec.runs_as_user:
        ctx.report.error(
            type_node,
            crumb,
            f"type: {name} items run as the logged-in user and belong in userland, not {stage.value}",
        )
        return False
    holds = " and ".join(s.plural for s in SPECS.values() if stage in s.stages)
    if ctx.native:
        ctx.report.error(type_node, crumb, f"type: {stage.value} holds {holds} only, not {name}")
        return False
    ctx.report.warn(type_node, crumb, f"type: {stage.value} runs {holds} only; this {name} is ignored")
    return None


def _elsewhere(d: _Draft, allowed: dict[str, F.Field]) -> None:
    """Report type-specific keys given to a type that does not take them, as each key's rule says.

    An error is reported whenever the key is written; a warning (or a native-only error) only when
    its value would have changed something (not null, false or empty).
    """
    for key in TYPE_KEYS.intersection(d.values).difference(d.spec.keys):
        node, rule = d.values[key], F.ITEM_FIELD[key].elsewhere
        if rule is None or (key not in allowed and key not in _OWN_RULES):
            continue
        how, text = rule
        if how != "error" and node.value in (None, False, ""):
            continue
        message = f"{key}: {text.format(type=d.spec.type.value)}"
        if how == "error":
            d.error(node, message)
        elif how == "strict":
            d.ctx.strict(node, d.crumb, message)
        else:
            d.ctx.report.warn(node, d.crumb, message)


_TEAM_ID = re.compile(r"[A-Z0-9]{10}")
_SECRET_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")


def _trust_keys(d: _Draft, typed: dict[str, Any]) -> None:
    """`team_id` is an Apple Team ID; `secrets` are variable names; a user script must opt in to them."""
    team = typed.get("team_id")
    if "team_id" in d.spec.keys and team and not _TEAM_ID.fullmatch(str(team)):
        d.error(
            d.values["team_id"],
            f"team_id: {show(team)} is not a Team ID; give the 10 capital letters and digits in"
            " parentheses after the signer's name (`bootstrapper pkg info` shows it)",
        )
    names = typed.get("secrets") or []
    if "secrets" not in d.spec.keys or not names:
        return
    for name in names:
        if not _SECRET_NAME.fullmatch(name):
            d.error(
                d.values["secrets"],
                f"secrets: {show(name)} is not a secret's name; use capitals, digits and _ (API_TOKEN)",
            )
    if d.spec.runs_as_user and not typed.get("secrets_to_user"):
        d.error(
            d.values["secrets"],
            f"secrets: a {d.spec.type.value} runs as the logged-in user, who can read its environment;"
            " add `secrets_to_user: true` if that is intended, or use a rootscript",
        )


def _receipt(d: _Draft, typed: dict[str, Any], required: bool) -> None:
    """A type with a receipt needs `packageid` and `version` to tell whether it is installed."""
    if not d.spec.has_receipt or required:
        return
    for key in ("packageid", "version"):
        if not typed.get(key):
            d.ctx.strict(
                d.values.get(key, d.node),
                d.crumb,
                f"{key}: needed to tell whether the package is installed; "
                "add it, or set `required: true` to install it every time",
            )
            return


# --- url and hash --------------------------------------------------------------------------------


def _url(d: _Draft) -> str | None:
    node = d.values.get("url")
    if node is None and d.spec.on_disk:
        # As in InstallApplications: a root script an earlier package put on disk, run where it lies
        # once its hash matches; never downloaded, never removed.
        if not {"file", "hash"} <= d.values.keys():
            d.error(
                d.node,
                "url: missing; give where it is downloaded from, or `file` and `hash` of a script"
                " already on the Mac (put there by an earlier package)",
            )
        return None
    if node is None or not d.spec.downloads:
        if d.spec.downloads:
            d.error(d.node, "url: missing; where is it downloaded from?")
        return None
    raw = node.value
    if not isinstance(raw, str) or not raw.strip():
        d.error(node, f"url: expected a URL, got {describe(node)}")
        return None
    if any(unicodedata.category(c) == "Cc" for c in raw):
        d.error(node, "url: contains control characters")
        return None
    try:
        parts = urlsplit(raw)
        if not parts.scheme and d.ctx.location is not None:
            raw = urljoin(d.ctx.location, raw)
            parts = urlsplit(raw)
    except ValueError:
        # urlsplit refuses an unbalanced or invalid [IPv6] host outright
        d.error(node, f"url: {show(raw)} is not a valid URL (check the [ ] around an IPv6 address)")
        return None
    problem = _url_problem(parts, raw, d.ctx) or _address_problem(parts, raw)
    if problem is not None:
        d.error(node, f"url: {problem}")
        return None
    return raw


def _url_problem(parts: SplitResult, raw: str, ctx: Context) -> str | None:
    scheme = parts.scheme.lower()
    rules: tuple[tuple[Callable[[], bool], Callable[[], str]], ...] = (
        (
            lambda: not scheme,
            lambda: f"{show(raw)} is relative, but the manifest has no location to resolve it against",
        ),
        (
            lambda: parts.username is not None or parts.password is not None,
            lambda: (
                "credentials inside URLs are refused (they end up in logs); "
                "send them as headers from the settings"
            ),
        ),
        (
            lambda: scheme == "http" and not ctx.allow_http,
            lambda: (
                "http:// is refused; use https://, or allow it for a lab with "
                "`settings: allow_http: true` or --allow-http"
            ),
        ),
        (
            lambda: scheme == "file" and not ctx.local,
            lambda: "file:// URLs are allowed only in a manifest read from this machine",
        ),
        (
            lambda: scheme not in ("http", "https", "file"),
            lambda: f"scheme {scheme!r} is not supported; use https://",
        ),
        (lambda: scheme != "file" and not parts.hostname, lambda: f"{show(raw)} has no host"),
    )
    return next((message() for broken, message in rules if broken()), None)


#: A host name: letters (any script, for international names), digits, dots, hyphens, underscores.
_HOST_NAME = re.compile(r"[\w.-]+")


def _address_problem(parts: SplitResult, raw: str) -> str | None:
    """A host or port the downloader could not use; found here so that every command says so."""
    if parts.scheme.lower() == "file":
        return None
    after_host = parts.netloc.rpartition("@")[2].rpartition("]")[2]
    port = after_host.partition(":")[2]  # all after the first colon, as urlsplit and httpx read it
    if port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        return f"{show(raw)} has the port {show(port)}; give a number from 1 to 65535, or none"
    host = parts.hostname or ""
    if parts.netloc.startswith("["):
        try:
            ipaddress.IPv6Address(host.partition("%")[0])
        except ValueError:
            return f"{show(raw)} has an invalid IPv6 address in [ ]"
        return None
    if not _HOST_NAME.fullmatch(host):
        return f"{show(raw)}: the host {show(host)} may hold only letters, digits, '.', '-' and '_'"
    if re.fullmatch(r"[0-9]+(\.[0-9]+){3}", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"{show(raw)} has an invalid IPv4 address"
    elif not host.isascii() and not _idna_ok(host):
        return f"{show(raw)}: the host {show(host)} is not a valid international domain name"
    return None


def _idna_ok(host: str) -> bool:
    """Whether the downloader can turn an international host name into its ASCII form."""
    import idna  # httpx's own dependency, for the same verdict; loaded only for such names

    try:
        idna.encode(host)
    except idna.IDNAError:
        return False
    return True


def _hash(d: _Draft) -> str | None:
    node = d.values.get("hash")
    if not d.spec.downloads:
        return None
    ia_note = {
        None: ": without one the item is refused at run time",
        True: "; the item is refused at run time until it has a real sha256",
    }
    if node is None:
        d.ctx.strict(
            d.node,
            d.crumb,
            "hash: missing; add the file's sha256 (`shasum -a 256 FILE`)"
            + ("" if d.ctx.native else ia_note[None]),
        )
        return None
    # YAML reads a hash of decimal digits only (or one like 1e5…) as a number: its text is the hash.
    text = node.raw if _is_number(node.value) and node.raw is not None else node.value
    problem = _sha256_problem(text, node)
    if problem is None:
        return str(text).strip().lower().removeprefix("sha256:")
    d.ctx.strict(node, d.crumb, f"hash: {problem}" + ("" if d.ctx.native else ia_note[True]))
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _sha256_problem(value: Any, node: Node) -> str | None:
    if _is_number(node.value) and not is_sha256(str(value).lower()):
        return f"{cut(str(value))} is a number, not 64 hex digits (sha256)"
    if not isinstance(value, str):
        return f"expected 64 hex digits (sha256), got {describe(node)}"
    text = value.strip().lower().removeprefix("sha256:")
    if not text:
        return "empty; expected 64 hex digits (sha256)"
    if is_sha256(text):
        return None
    if re.fullmatch(r"[0-9a-f]*", text):
        return f"expected 64 hex digits, got {len(text)}"
    return f"expected 64 hex digits (sha256), got {show(value)}"


# --- file and path -------------------------------------------------------------------------------


def _file(d: _Draft, url: str | None) -> PurePosixPath | None:
    node = d.values.get("file")
    if not d.spec.downloads:
        return None
    if node is None:
        return _default_file(d, url)
    path = _checked_path(node, "file", d)
    if path is None:
        return None
    if not path.is_absolute():
        if d.ctx.native:
            d.error(node, f"file: {show(node.value)} must be an absolute path")
            return None
        path = INSTALL_DIR / path
    on_disk = "url" not in d.values  # a script already on the Mac: it stays where it is
    if d.spec.kept_in_install_dir and not on_disk and not path.is_relative_to(INSTALL_DIR):
        if d.ctx.native:
            d.error(
                node,
                f"file: packages and scripts are kept under {INSTALL_DIR} (root-owned, removed at the end); "
                f"got {show(str(path))}",
            )
            return None
        d.ctx.outside_install_dir.append(str(path))
    return path


def _default_file(d: _Draft, url: str | None) -> PurePosixPath | None:
    """Where a download goes when the item does not say: under INSTALL_DIR, named after its URL."""
    if "file" in d.spec.needs:
        d.error(d.node, "file: missing; where on the Mac should the file be placed?")
        return None
    if not d.ctx.native:
        d.error(d.node, "file: missing; InstallApplications needs a path for every item")
        return None
    if url is None:
        return None
    return INSTALL_DIR / d.stage.value / (PurePosixPath(urlsplit(url).path).name or "item")


def _wait_path(d: _Draft) -> str | None:
    node = d.values.get("path")
    if "path" not in d.spec.keys:
        return None
    if node is None:
        d.error(d.node, "path: missing; a wait item waits for this path to exist")
        return None
    path = _checked_path(node, "path", d)
    if path is not None and not path.is_absolute():
        d.error(node, f"path: {show(node.value)} must be an absolute path")
        return None
    return str(path) if path is not None else None


def _checked_path(node: Node, key: str, d: _Draft) -> PurePosixPath | None:
    raw = node.value
    if not isinstance(raw, str) or not raw:
        d.error(node, f"{key}: expected a path, got {describe(node)}")
        return None
    parts = raw.split("/")
    rules = (
        (any(unicodedata.category(c) == "Cc" for c in raw), "contains NUL or control characters"),
        (".." in parts, f"{show(raw)} contains '..'; give the path without it"),
        (
            any(len(p.encode()) > _MAX_NAME_BYTES for p in parts),
            f"a name in it is longer than {_MAX_NAME_BYTES} bytes",
        ),
        (len(raw.encode()) > _MAX_PATH_BYTES, f"longer than {_MAX_PATH_BYTES} bytes"),
        (raw.endswith("/"), f"{show(raw)} names a folder; give a file path"),
    )
    problem = next((message for broken, message in rules if broken), None)
    if problem is not None:
        d.error(node, f"{key}: {problem}")
        return None
    return PurePosixPath(raw)


# --- values by field type ------------------------------------------------------------------------


def typed_value(node: Node, spec: F.Field, crumb: str, ctx: Context) -> Any:
    """Check a value against its field type; report and return None when it does not fit."""
    if spec.type == "enum":
        return enum_value(node, crumb, ctx, spec.choices)
    if spec.type == "condition":
        return conditions.parse(node, crumb, ctx)
    reader, expected = _READERS[spec.type]
    value = reader(node, crumb, ctx)
    if value is _BAD:
        ctx.report.field_error(node, crumb, f"expected {expected}, got {describe(node)}")
        return None
    if spec.minimum is not None and value is not None and value < spec.minimum:
        ctx.report.field_error(node, crumb, f"expected a number ≥ {spec.minimum:g}, got {cut(str(value))}")
        return None
    return value


def enum_value(node: Node, crumb: str, ctx: Context, allowed: tuple[str, ...], default: Any = None) -> Any:
    """One of `allowed`, or `default` after reporting the value with the nearest choice."""
    value = node.value
    if isinstance(value, str) and value in allowed:
        return value
    if node.is_scalar:
        hint = suggest(str(value), list(allowed))
        ctx.report.field_error(node, crumb, f"{show(value)} is not one of {choices(list(allowed))}{hint}")
    else:
        ctx.report.field_error(node, crumb, f"expected one of {choices(list(allowed))}, got {describe(node)}")
    return default


#: What a reader returns for a value of the wrong type (None means "not given": null).
_BAD = object()


def _read_string(node: Node, crumb: str, ctx: Context) -> Any:
    if node.value is None:
        return None
    if node.is_scalar:
        return node.raw if node.raw is not None else str(node.value)
    return _BAD


def _read_boolean(node: Node, crumb: str, ctx: Context) -> Any:
    value = node.value
    if isinstance(value, bool):
        return value
    if not ctx.native and isinstance(value, str) and value.lower() in ("true", "false"):
        ctx.report.warn(node, crumb, f"{show(value)} is a text; write true or false without quotes")
        return value.lower() == "true"
    return _BAD


def _read_integer(node: Node, crumb: str, ctx: Context) -> Any:
    value = node.value
    return value if isinstance(value, int) and not isinstance(value, bool) else _BAD


def _read_number(node: Node, crumb: str, ctx: Context) -> Any:
    value = node.value
    return value if isinstance(value, int | float) and not isinstance(value, bool) else _BAD


def _read_strings(node: Node, crumb: str, ctx: Context) -> Any:
    if node.is_seq and all(v.is_scalar and v.value is not None for v in node.value):
        return [v.raw if v.raw is not None else str(v.value) for v in node.value]
    return _BAD


#: Each plain field type: how its value is read, and what a wrong one is said to miss.
_READERS: dict[str, tuple[Callable[[Node, str, Context], Any], str]] = {
    "string": (_read_string, "a text"),
    "boolean": (_read_boolean, "true or false"),
    "integer": (_read_integer, "a whole number"),
    "number": (_read_number, "a number"),
    "strings": (_read_strings, "a list of texts"),
}
