"""The managed-preferences profile, the Jamf Pro schema and the settings reference, all generated
from `bootstrapper.config` so that none of them can list a key the program does not read, or give
a key the wrong type (an `<string>5</string>` where the daemon needs an `<integer>`).

The profile uses a payload whose PayloadType is the preference domain itself ("custom settings"):
macOS writes its keys to /Library/Managed Preferences/<domain>.plist, which `config.load_config`
reads. A second payload, `com.apple.servicemanagement` (Managed Login Items, macOS 13+), marks our
launchd jobs as managed: they are enabled and allowed without the "Background Items Added" prompt,
and the user cannot turn them off in Login Items settings. It matches them by Label, and, when a
Team ID is given, everything signed by that team (Apple's device-management schema,
mdm/profiles/com.apple.servicemanagement.yaml: Rules → RuleType, RuleValue, Comment).

The committed examples in pkg/profile/ and docs/settings.md are checked against these generators by the tests.
"""

from __future__ import annotations

import json
import plistlib
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from bootstrapper.config import base_type, coerce, definitions, types
from bootstrapper.errors import UsageError
from bootstrapper.paths import PREFS_DOMAIN, Paths

#: Values shown in the example profile for settings whose default is "not set".
EXAMPLES: dict[str, Any] = {"manifest_url": "https://bootstrap.example.com/manifest.yaml"}
PROFILE_ID = f"{PREFS_DOMAIN}.profile"
#: uuid5 namespace: the same identifier always gets the same PayloadUUIDs, so regenerating a profile
#: produces the same bytes and an MDM sees an update, not a new profile.
_NAMESPACE = uuid.UUID("5b0c8a3e-6f47-4d59-9a0e-2f6a1c9d7e41")

_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", dict: "object", list: "array"}
_PLIST_TYPES = {
    bool: "boolean",
    int: "integer",
    float: "real",
    str: "string",
    dict: "dictionary",
    list: "array",
}


def example_settings() -> dict[str, Any]:
    """Every setting that has a value by default, plus an example for the most important unset one."""
    out: dict[str, Any] = {}
    for f in definitions():
        default = f.default_factory() if callable(f.default_factory) else f.default
        value = EXAMPLES.get(f.name, default)
        if value is not None:
            out[f.name] = value
    return out


def parse_assignments(items: Sequence[str]) -> dict[str, Any]:
    """`key=value` (and `headers.Name=value` for dictionaries) from the command line, type-checked."""
    known = types()
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise UsageError(f"--set {item!r}: expected key=value")
        name, _, sub = key.partition(".")
        if name not in known:
            raise UsageError(f"--set {item!r}: unknown setting {name!r}; see docs/settings.md")
        if base_type(known[name]) is dict:
            if not sub:
                raise UsageError(f"--set {item!r}: {name} is a dictionary; use {name}.KEY=VALUE")
            out.setdefault(name, {})[sub] = raw
        else:
            out[name] = coerce(name, raw, f"{name} from --set")
    return {k: coerce(k, v, f"{k} from --set") if isinstance(v, dict) else v for k, v in out.items()}


def login_items_payload(identifier: str = PROFILE_ID, team_id: str = "") -> dict[str, Any]:
    """Managed Login Items for the daemon and agent labels (and our Team ID's signed code, if given)."""
    paths = Paths()
    if team_id and not re.fullmatch(r"[A-Z0-9]{10}", team_id):
        raise UsageError(f"--team-id {team_id!r}: expected the 10-character Apple Team ID, e.g. ABCDE12345")
    rules = [
        {"RuleType": "Label", "RuleValue": paths.daemon_label, "Comment": "bootstrapper daemon"},
        {"RuleType": "Label", "RuleValue": paths.agent_label, "Comment": "bootstrapper agent"},
    ]
    if team_id:
        rules.append({"RuleType": "TeamIdentifier", "RuleValue": team_id, "Comment": "bootstrapper's signer"})
    return {
        "PayloadType": "com.apple.servicemanagement",
        "PayloadIdentifier": f"{identifier}.loginitems",
        "PayloadUUID": str(uuid.uuid5(_NAMESPACE, f"{identifier}.loginitems")).upper(),
        "PayloadVersion": 1,
        "PayloadDisplayName": "bootstrapper background items",
        "Rules": rules,
    }


def mobileconfig(
    settings: Mapping[str, Any], *, identifier: str = PROFILE_ID, organization: str = "", team_id: str = ""
) -> bytes:
    """A configuration profile (System scope): `settings` in the managed preferences domain, and our
    launchd jobs as Managed Login Items."""
    known = types()
    values: dict[str, Any] = {}
    for key, raw in settings.items():
        if key not in known:
            raise UsageError(f"{key}: not a setting; see docs/settings.md for the list")
        value = coerce(key, raw, f"{key} in the profile")
        if value is not None:
            values[key] = value
    content = {
        "PayloadType": PREFS_DOMAIN,
        "PayloadIdentifier": f"{identifier}.settings",
        "PayloadUUID": str(uuid.uuid5(_NAMESPACE, f"{identifier}.settings")).upper(),
        "PayloadVersion": 1,
        "PayloadDisplayName": "bootstrapper settings",
        **values,
    }
    profile: dict[str, Any] = {
        "PayloadContent": [content, login_items_payload(identifier, team_id)],
        "PayloadDisplayName": "bootstrapper",
        "PayloadDescription": f"Settings for bootstrapper (preference domain {PREFS_DOMAIN}).",
        "PayloadIdentifier": identifier,
        "PayloadUUID": str(uuid.uuid5(_NAMESPACE, identifier)).upper(),
        "PayloadType": "Configuration",
        "PayloadScope": "System",
        "PayloadVersion": 1,
    }
    if organization:
        profile["PayloadOrganization"] = organization
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML, sort_keys=True)


def jamf_schema() -> dict[str, Any]:
    """A JSON schema for Jamf Pro's Application & Custom Settings (external applications) payload."""
    properties: dict[str, Any] = {}
    hints = types()
    for order, f in enumerate(definitions()):
        kind = base_type(hints[f.name])
        meta = f.metadata
        prop: dict[str, Any] = {
            "title": f.name,
            "description": _describe(meta["doc"], meta["secret"]),
            "property_order": (order + 1) * 5,
            "type": _JSON_TYPES[kind],
        }
        if kind is dict:
            prop["additionalProperties"] = {"type": "string"}
        elif kind is list:
            prop["items"] = {"type": "string"}
        elif f.default is not None and not callable(f.default_factory):
            prop["default"] = f.default
        if meta["choices"]:
            prop["enum"] = list(meta["choices"])
        if kind in (int, float) and meta["minimum"]:
            prop["minimum"] = kind(meta["minimum"])
        properties[f.name] = prop
    return {
        "title": f"bootstrapper ({PREFS_DOMAIN})",
        "description": "Settings for bootstrapper. Leave a setting out to keep its default.",
        "properties": properties,
    }


def jamf_schema_text() -> str:
    return json.dumps(jamf_schema(), indent=2, ensure_ascii=False) + "\n"


def settings_markdown() -> str:
    """docs/settings.md: the domain, the order of the sources, and one row per setting."""
    hints = types()
    paths = Paths()
    rows = []
    for f in definitions():
        kind = base_type(hints[f.name])
        default = f.default_factory() if callable(f.default_factory) else f.default
        shown = "not set" if default is None else f"`{_plist_value(default)}`"
        notes = []
        if f.metadata["choices"]:
            notes.append("one of " + ", ".join(f"`{c}`" for c in f.metadata["choices"]))
        if kind in (int, float) and f.metadata["minimum"]:
            notes.append(f"at least {f.metadata['minimum']:g}")
        doc = _describe(f.metadata["doc"], f.metadata["secret"]).replace("|", "\\|")
        if notes:
            doc += " (" + "; ".join(notes) + ")"
        rows.append(f"| `{f.name}` | {_PLIST_TYPES[kind]} | {shown} | {doc} |")
    return "\n".join(
        [
            "# Settings",
            "",
            "<!-- Generated from bootstrapper/config.py by `python pkg/build.py generate`;"
            " a test fails when it drifts. -->",
            "",
            f"Preference domain: **`{PREFS_DOMAIN}`**. Sources, lowest first: the defaults, the"
            f" `config.plist` shipped in the package (`{paths.config_plist}`), the managed preferences"
            f" an MDM profile installs (`{paths.managed_prefs}`), environment variables"
            " (`BOOTSTRAPPER_<KEY>` in upper case, for tests and the sandbox), and command-line flags.",
            "",
            "Types are checked wherever a value comes from: an integer setting must be an `<integer>`"
            " in a profile (a `<string>` holding digits is accepted, a `<real>` is not), a boolean a"
            " `<true/>` or `<false/>`. A bad value stops the daemon with one line naming the key,"
            " its source and what is expected. Unknown keys are reported and ignored.",
            "",
            "Ship settings with an MDM profile: start from `pkg/profile/org.bootstrapper.mobileconfig`,"
            " or generate one with `bootstrapper deploy profile --set manifest_url=https://…`."
            " Jamf Pro admins can paste `pkg/profile/jamf-schema.json` into Application & Custom"
            f" Settings → External Applications (preference domain `{PREFS_DOMAIN}`).",
            "",
            "| key | type | default | meaning |",
            "|---|---|---|---|",
            *rows,
            "",
        ]
    )


def _describe(doc: str, secret: bool) -> str:
    return f"{doc} (Secret: redacted wherever settings are shown.)" if secret else doc


def _plist_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)
