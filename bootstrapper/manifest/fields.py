"""Every manifest key, defined once: the loader checks against it and the JSON Schema is made from it.

Which item types take a type-specific key is the types' business (`kinds.SPECS`); what giving one to a
type that does not take it means is the key's, here (`elsewhere`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bootstrapper.manifest.kinds import ItemType
from bootstrapper.manifest.model import FailPolicy, FinalAction, OnFailure

NATIVE = "native"
IA = "ia"
BOTH = frozenset({NATIVE, IA})
NATIVE_ONLY = frozenset({NATIVE})

#: How a type-specific key given to another type is reported: an error, an error in the native format
#: only (InstallApplications runs it anyway), or a warning; the message may name the `{type}`.
Elsewhere = tuple[Literal["error", "strict", "warn"], str]


@dataclass(frozen=True)
class Field:
    name: str
    #: string, integer, number, boolean, enum, sha256, url, path, condition, strings
    type: str
    doc: str
    formats: frozenset[str] = BOTH
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    #: For type-specific keys: what it means on a type that does not take it.
    elsewhere: Elsewhere | None = None


ITEM_FIELDS: tuple[Field, ...] = (
    Field("name", "string", "Shown in progress and logs; unique within the manifest."),
    Field("type", "enum", "What the item is and who runs it.", choices=tuple(t.value for t in ItemType)),
    Field(
        "url",
        "url",
        "Where to download it: https, or relative to the manifest's own location.",
        elsewhere=("error", "a {type} item downloads nothing; remove it"),
    ),
    Field(
        "hash",
        "sha256",
        "sha256 of the file, 64 hex digits (a `sha256:` prefix is accepted).",
        elsewhere=("error", "a {type} item downloads nothing; remove it"),
    ),
    Field(
        "file",
        "path",
        "Where the file is placed on the Mac (absolute).",
        elsewhere=("error", "a {type} item places no file; use `path` for what it waits for"),
    ),
    Field(
        "size", "integer", "Expected size in bytes; a download is cut off past it.", NATIVE_ONLY, minimum=1
    ),
    Field(
        "packageid",
        "string",
        "Package identifier, to skip the install when its receipt is current.",
        elsewhere=("warn", "only packages have one; ignored"),
    ),
    Field(
        "version",
        "string",
        "Package version compared with the installed receipt's version.",
        elsewhere=("warn", "only packages have one; ignored"),
    ),
    Field("required", "boolean", "Install even when the receipt says this version is present."),
    Field("pkg_required", "boolean", "Alias of `required` (InstallApplications ports)."),
    Field(
        "donotwait",
        "boolean",
        "Scripts only: start it and go on without waiting for it to end.",
        elsewhere=("strict", "only scripts can run in the background, not {type}"),
    ),
    Field("retries", "integer", "Further download attempts after the first (0 = no retry).", minimum=0),
    Field("retrywait", "number", "Seconds before the first retry; later waits grow.", minimum=0),
    Field(
        "fail_policy",
        "enum",
        "What a failure of this item means for the run.",
        choices=tuple(p.value for p in FailPolicy),
    ),
    Field("skip_if", "condition", "Skip the item when this condition holds."),
    Field("only_if", "condition", "Run the item only when this condition holds.", NATIVE_ONLY),
    Field(
        "timeout", "number", "Seconds the item may run (scripts, installs, waits).", NATIVE_ONLY, minimum=1
    ),
    Field(
        "arguments",
        "strings",
        "Scripts only: arguments passed to the script.",
        NATIVE_ONLY,
        elsewhere=("error", "only scripts take arguments, not {type}"),
    ),
    Field(
        "team_id",
        "string",
        "Packages only: the Apple Team ID (10 letters and digits) whose Developer ID Installer"
        " certificate must sign the package; checked before `installer` runs.",
        NATIVE_ONLY,
        elsewhere=("error", "only packages carry an installer signature, not {type}"),
    ),
    Field(
        "secrets",
        "strings",
        "Scripts only: names of `script_secrets` settings passed to this script as environment"
        " variables (never written to disk, masked in its output).",
        NATIVE_ONLY,
        elsewhere=("error", "only scripts take secrets, not {type}"),
    ),
    Field(
        "secrets_to_user",
        "boolean",
        "User scripts only: confirm that the named secrets may reach the logged-in user's process.",
        NATIVE_ONLY,
        elsewhere=("error", "only user scripts take it, not {type}"),
    ),
    Field(
        "path",
        "path",
        "`wait` items only: the path whose appearance ends the wait.",
        NATIVE_ONLY,
        elsewhere=("error", "only wait items have one; {type} items use `file`"),
    ),
    Field(
        "parallel_group",
        "string",
        "InstallApplications-swiftly's parallel installs; ignored: items run in manifest order.",
        frozenset({IA}),
    ),
)

#: The same, by name.
ITEM_FIELD: dict[str, Field] = {f.name: f for f in ITEM_FIELDS}

SETTINGS_FIELDS: tuple[Field, ...] = (
    Field("allow_http", "boolean", "Allow plain http:// URLs (labs and tests only)."),
    Field("retries", "integer", "Default `retries` for every item.", minimum=0),
    Field("retrywait", "number", "Default `retrywait` for every item.", minimum=0),
    Field("timeout", "number", "Default `timeout` for every item.", minimum=1),
    Field(
        "fail_policy",
        "enum",
        "Default `fail_policy` for every item.",
        choices=tuple(p.value for p in FailPolicy),
    ),
)

TOP_FIELDS: tuple[Field, ...] = (
    Field("format", "integer", "The native format's version: 1.", NATIVE_ONLY),
    Field("settings", "object", "Defaults for every item.", NATIVE_ONLY),
    Field(
        "on_failure",
        "enum",
        "`retry`: keep the daemon and try again later; `cleanup`: remove it anyway.",
        NATIVE_ONLY,
        choices=tuple(o.value for o in OnFailure),
    ),
    Field(
        "final_action",
        "enum",
        "What to do after a successful run.",
        NATIVE_ONLY,
        choices=tuple(a.value for a in FinalAction),
    ),
    Field("preflight", "items", "Root scripts; exit 0 from one means the Mac is already set up."),
    Field("setupassistant", "items", "Root items, run at once, before any user logs in."),
    Field("userland", "items", "Items run after a user logs in; user items run in that user's session."),
)

CONDITION_KEYS = ("arch", "os_version", "model", "path_exists", "script")
#: InstallApplications' `skip_if` words and the architecture each one names.
ARCH_WORDS = {"x86_64": "x86_64", "intel": "x86_64", "arm64": "arm64", "apple_silicon": "arm64"}


def item_fields(fmt: str) -> dict[str, Field]:
    return {f.name: f for f in ITEM_FIELDS if fmt in f.formats}
