"""Every manifest key, defined once: the loader checks against it and the JSON Schema is made from it."""

from __future__ import annotations

from dataclasses import dataclass

from bootstrapper.manifest.model import FailPolicy, FinalAction, Kind, OnFailure

NATIVE = "native"
IA = "ia"
BOTH = frozenset({NATIVE, IA})
NATIVE_ONLY = frozenset({NATIVE})


@dataclass(frozen=True)
class Field:
    name: str
    #: string, integer, number, boolean, enum, sha256, url, path, condition, strings
    type: str
    doc: str
    formats: frozenset[str] = BOTH
    choices: tuple[str, ...] = ()
    minimum: float | None = None


ITEM_FIELDS: tuple[Field, ...] = (
    Field("name", "string", "Shown in progress and logs; unique within the manifest."),
    Field("type", "enum", "What the item is and who runs it.", choices=tuple(k.value for k in Kind)),
    Field("url", "url", "Where to download it: https, or relative to the manifest's own location."),
    Field("hash", "sha256", "sha256 of the file, 64 hex digits (a `sha256:` prefix is accepted)."),
    Field("file", "path", "Where the file is placed on the Mac (absolute)."),
    Field(
        "size", "integer", "Expected size in bytes; a download is cut off past it.", NATIVE_ONLY, minimum=1
    ),
    Field("packageid", "string", "Package identifier, to skip the install when its receipt is current."),
    Field("version", "string", "Package version compared with the installed receipt's version."),
    Field("required", "boolean", "Install even when the receipt says this version is present."),
    Field("pkg_required", "boolean", "Alias of `required` (InstallApplications ports)."),
    Field("donotwait", "boolean", "Scripts only: start it and go on without waiting for it to end."),
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
    Field("arguments", "strings", "Scripts only: arguments passed to the script.", NATIVE_ONLY),
    Field("path", "path", "`wait` items only: the path whose appearance ends the wait.", NATIVE_ONLY),
    Field(
        "parallel_group",
        "string",
        "InstallApplications-swiftly's parallel installs; ignored: items run in manifest order.",
        frozenset({IA}),
    ),
)

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

STAGES = ("preflight", "setupassistant", "userland")

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
