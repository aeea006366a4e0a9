"""Settings, merged from five sources, lowest first: defaults, the config plist shipped in our package,
the managed preferences an MDM profile installs, environment variables, command-line flags.

Each setting is defined once, as a field of `Config` with its documentation in the field's metadata;
the managed-preferences profile and the Jamf schema are generated from the same definitions.
Values are type-checked wherever they come from: an integer in a profile is an integer (the Go port
silently drops those), and a bad value is one line naming the key, its source and what is expected.
"""

from __future__ import annotations

import dataclasses
import plistlib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bootstrapper.errors import ConfigError
from bootstrapper.paths import Paths

ENV_PREFIX = "BOOTSTRAPPER_"


def setting(
    default: Any, doc: str, *, secret: bool = False, choices: tuple[str, ...] = (), minimum: float = 0
) -> Any:
    meta = {"doc": doc, "secret": secret, "choices": choices, "minimum": minimum}
    if isinstance(default, dict | list):
        return field(default_factory=type(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Config:
    manifest_url: str | None = setting(None, "Where the daemon fetches the manifest: an https URL.")
    manifest_public_keys: list[str] = setting(
        [],
        "minisign public keys (the base64 line of minisign.pub); when set, only a manifest signed by one "
        "of them runs. In the environment, separate keys with commas.",
    )
    manifest_min_serial: int = setting(
        0, "With manifest_public_keys: refuse a manifest signed with a lower serial.", minimum=0
    )
    allow_http: bool = setting(False, "Allow plain http:// URLs (labs and tests only).")
    concurrency: int = setting(4, "Downloads at once.", minimum=1)
    lookahead_bytes: int = setting(
        2 * 1024**3, "How many bytes may be downloaded ahead of the item being installed.", minimum=1
    )
    max_download_bytes: int = setting(
        16 * 1024**3, "Largest download accepted when an item states no `size`.", minimum=1
    )
    connect_timeout: float = setting(15.0, "Seconds to connect to a server.", minimum=1)
    read_timeout: float = setting(60.0, "Seconds a server may stay silent mid-download.", minimum=1)
    min_rate: int = setting(1024, "Bytes per second below which a download is abandoned ...", minimum=0)
    min_rate_window: float = setting(60.0, "... when it stays that slow for this many seconds.", minimum=1)
    manifest_deadline: float = setting(
        1800.0, "Seconds to keep retrying the manifest download (the network often comes up late).", minimum=1
    )
    headers: dict[str, str] = setting(
        {},
        "HTTP headers sent to the manifest's host, e.g. an Authorization token. Never logged.",
        secret=True,
    )
    ca_bundle: str | None = setting(None, "A PEM file of extra certificate authorities to trust.")
    client_cert: str | None = setting(None, "A PEM client certificate for mutual TLS.")
    client_key: str | None = setting(None, "The client certificate's private key (PEM).")
    proxy: str | None = setting(
        None, "An HTTPS proxy URL; proxy variables in the environment are ignored.", secret=True
    )
    agent_checkin_timeout: float = setting(
        120.0, "Seconds to wait for the user's agent to check in before starting it again.", minimum=1
    )
    user_wait_timeout: float = setting(
        0.0, "Seconds to wait for a user to log in; 0 waits for ever.", minimum=0
    )
    on_failure: str | None = setting(
        None, "Override the manifest's on_failure: retry or cleanup.", choices=("retry", "cleanup")
    )
    max_attempts: int = setting(
        5, "Daemon runs before a failing bootstrap gives up and cleans up.", minimum=1
    )
    final_action: str | None = setting(
        None,
        "Override the manifest's final_action: none, reboot or logout.",
        choices=("none", "reboot", "logout"),
    )
    swiftdialog: bool = setting(False, "Show progress in swiftDialog for the logged-in user.")
    swiftdialog_path: str = setting("/usr/local/bin/dialog", "Where swiftDialog is installed.")
    depnotify: bool = setting(False, "Write DEPNotify's command file.")
    webhook_url: str | None = setting(
        None, "POST run events (start, failures, end) here as JSON.", secret=True
    )
    cleanup: bool = setting(True, "Remove bootstrapper from the Mac when the run ends.")
    log_level: str = setting("info", "How much the log says.", choices=("debug", "info", "warning", "error"))
    #: Where each value came from, for `config show` and error messages.
    sources: Mapping[str, str] = field(default_factory=dict, metadata={"internal": True})

    def redacted(self) -> dict[str, Any]:
        """The settings as shown to people and logs: secrets replaced."""
        out: dict[str, Any] = {}
        for f in definitions():
            value = getattr(self, f.name)
            out[f.name] = "<redacted>" if f.metadata["secret"] and value else value
        return out


def definitions() -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(Config) if not f.metadata.get("internal")]


def types() -> dict[str, Any]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in definitions()}


def base_type(annotation: Any) -> type:
    """`int | None` → int; `dict[str, str]` → dict; `list[str]` → list."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (dict, list):
        return typing.cast(type, origin)
    if args:
        return base_type(args[0])
    assert isinstance(annotation, type)
    return annotation


def read_plist(path: Path) -> dict[str, Any]:
    """A plist file's top-level dict (XML or binary); {} when it does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        value = plistlib.loads(data)
    except Exception as exc:  # plistlib raises several types for bad input
        raise ConfigError(f"{path}: not a valid property list ({exc}); fix or remove it") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected a dictionary at the top of the property list")
    return value


def load_config(
    paths: Paths,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> tuple[Config, list[str]]:
    """Merge the sources; return the config and warnings (unknown keys, which are ignored)."""
    warnings: list[str] = []
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    known = types()
    layers: list[tuple[str, Mapping[str, Any]]] = [
        (str(paths.config_plist), read_plist(paths.config_plist)),
        (str(paths.managed_prefs), read_plist(paths.managed_prefs)),
    ]
    if env:
        from_env = {
            k.removeprefix(ENV_PREFIX).lower(): v
            for k, v in env.items()
            if k.startswith(ENV_PREFIX) and k.removeprefix(ENV_PREFIX).lower() in known
        }
        layers.append(("environment", from_env))
    if flags:
        layers.append(("command line", {k: v for k, v in flags.items() if v is not None}))
    for source, layer in layers:
        for key, raw in layer.items():
            if key not in known:
                if not key.startswith("Payload"):
                    warnings.append(f"{source}: unknown setting {key!r} ignored")
                continue
            shown = f"{ENV_PREFIX}{key.upper()}" if source == "environment" else key
            values[key] = coerce(key, raw, f"{shown} from {source}")
            sources[key] = source
    return Config(**values, sources=sources), warnings


def coerce(key: str, raw: Any, where: str) -> Any:
    """Type-check one value; strings (environment, sloppy profiles) are parsed where unambiguous."""
    spec = {f.name: f for f in definitions()}[key]
    annotation = types()[key]
    kind = base_type(annotation)
    optional = type(None) in typing.get_args(annotation)
    meta = spec.metadata

    def bad(expected: str) -> ConfigError:
        shown = "<redacted>" if meta["secret"] else repr(raw)
        return ConfigError(f"setting {where}: expected {expected}, got {shown}")

    if raw is None or (optional and raw == ""):
        if optional:
            return None
        raise bad(kind.__name__)
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in ("true", "yes", "1", "false", "no", "0"):
            return raw.strip().lower() in ("true", "yes", "1")
        raise bad("true or false")
    if kind in (int, float):
        value: Any = raw
        if isinstance(raw, str):
            try:
                value = int(raw.strip()) if kind is int else float(raw.strip())
            except ValueError:
                raise bad("a whole number" if kind is int else "a number") from None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (kind is int and isinstance(value, float))
        ):
            raise bad("a whole number" if kind is int else "a number")
        if value < meta["minimum"]:
            raise bad(f"a number ≥ {meta['minimum']:g}")
        return kind(value)
    if kind is list:
        # The environment holds one string: keys separated by commas (a key never contains one).
        items = [part.strip() for part in raw.split(",")] if isinstance(raw, str) else raw
        if isinstance(items, list | tuple) and all(isinstance(v, str) for v in items):
            return [v.strip() for v in items if v.strip()]
        raise bad("a list of texts")
    if kind is dict:
        if isinstance(raw, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
            return dict(raw)
        raise bad("a dictionary of texts")
    if not isinstance(raw, str):
        raise bad("a text")
    if meta["choices"] and raw not in meta["choices"]:
        raise bad("one of " + ", ".join(meta["choices"]))
    return raw
