"""The native format's JSON Schema, made from the same key and type tables the loader checks against.

`bootstrapper schema` prints it; manifests/schema.json is the committed copy that editors use
(via the `yaml-language-server: $schema=` line), and a test fails when the two drift apart.
"""

from __future__ import annotations

import json
from typing import Any

from bootstrapper.manifest import fields as F
from bootstrapper.manifest.kinds import SPECS, TYPE_KEYS, KindSpec
from bootstrapper.manifest.model import Stage

SCHEMA_ID = "https://bootstrapper.invalid/schema/manifest-1.json"
#: A value that changes nothing: what a type-specific key may hold on a type that ignores it.
_SAYS_NOTHING = {"enum": [None, False, ""]}


def _condition() -> dict[str, Any]:
    tests: dict[str, Any] = {
        "arch": {
            "enum": ["arm64", "x86_64", "intel", "apple_silicon"],
            "description": "Native architecture.",
        },
        "os_version": {
            "type": "string",
            "pattern": r"^\s*(>=|<=|==|!=|>|<)\s*\d+(\.\d+)*\s*$",
            "description": "A comparison with the macOS version, e.g. '>= 14.0'.",
        },
        "model": {"type": "string", "description": "Glob over the model identifier, e.g. 'MacBook*'."},
        "path_exists": {"type": "string", "pattern": "^/", "description": "An absolute path that exists."},
        "script": {"type": "string", "description": "Shell script run with /bin/sh; exit 0 means it holds."},
    }
    all_of = {"type": "object", "properties": tests, "additionalProperties": False, "minProperties": 1}
    return {
        "oneOf": [
            {"enum": sorted(F.ARCH_WORDS)},
            all_of,
            {"type": "array", "items": all_of, "minItems": 1},
        ]
    }


def _field(spec: F.Field) -> dict[str, Any]:
    out: dict[str, Any]
    if spec.type in ("string", "url", "path"):
        out = {"type": "string"}
        if spec.type == "path":
            out["pattern"] = "^/"
    elif spec.type == "sha256":
        out = {"type": "string", "pattern": "^(sha256:)?[0-9a-fA-F]{64}$"}
    elif spec.type == "enum":
        out = {"enum": list(spec.choices)}
    elif spec.type == "condition":
        out = {"$ref": "#/$defs/condition"}
    elif spec.type == "strings":
        out = {"type": "array", "items": {"type": "string"}}
    elif spec.type == "items":
        out = {"type": "array", "items": {"$ref": "#/$defs/item"}}
    elif spec.type == "object":
        out = {"$ref": "#/$defs/settings"}
    else:
        out = {"type": spec.type}
    if spec.minimum is not None:
        out["minimum"] = spec.minimum
    out["description"] = spec.doc
    return out


def type_rule(spec: KindSpec) -> dict[str, Any]:
    """A type's fragment: the keys it needs, and the type-specific keys that are errors on it."""
    # How each type-specific key this type does not take is reported (warnings are no schema matter).
    refused = {
        f.name: f.elsewhere[0]
        for f in F.ITEM_FIELDS
        if F.NATIVE in f.formats
        and f.name in TYPE_KEYS - spec.keys
        and f.elsewhere is not None
        and f.elsewhere[0] != "warn"
    }
    then: dict[str, Any] = {}
    if spec.needs:
        then["required"] = sorted(spec.needs - {"url"} if spec.on_disk else spec.needs)
    if refused:
        # An error whenever written; a native-only error only when the value says something.
        then["properties"] = {
            key: False if how == "error" else _SAYS_NOTHING for key, how in sorted(refused.items())
        }
    if spec.on_disk:  # a url to download from, or the file already on the Mac
        then["anyOf"] = [{"required": ["url"]}, {"required": ["file"]}]
    if spec.has_receipt:
        then["anyOf"] = [
            {"required": ["packageid", "version"]},
            {"required": ["required"], "properties": {"required": {"const": True}}},
            {"required": ["pkg_required"], "properties": {"pkg_required": {"const": True}}},
        ]
    return {
        "description": f"{spec.type.value}: {spec.doc}",
        "if": {"required": ["type"], "properties": {"type": {"const": spec.type.value}}},
        "then": then,
    }


def _stage_items(stage: Stage) -> dict[str, Any]:
    """A stage's list, limited to the types that may stand in it."""
    allowed = [t.value for t, spec in SPECS.items() if stage in spec.stages]
    return {"$ref": "#/$defs/item", "properties": {"type": {"enum": allowed}}}


def manifest_schema() -> dict[str, Any]:
    def props(table: tuple[F.Field, ...]) -> dict[str, Any]:
        return {f.name: _field(f) for f in table if F.NATIVE in f.formats}

    top = props(F.TOP_FIELDS)
    top["format"] = {"const": 1, "description": "The native format's version: 1."}
    for stage in Stage:
        top[stage.value]["items"] = _stage_items(stage)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "bootstrapper manifest",
        "type": "object",
        "required": ["format"],
        "additionalProperties": False,
        "properties": top,
        "$defs": {
            "item": {
                "type": "object",
                "required": ["name", "type"],
                "additionalProperties": False,
                "properties": props(F.ITEM_FIELDS),
                "allOf": [type_rule(spec) for spec in SPECS.values()],
            },
            "settings": {
                "type": "object",
                "additionalProperties": False,
                "properties": props(F.SETTINGS_FIELDS),
            },
            "condition": _condition(),
        },
    }


def schema_text() -> str:
    return json.dumps(manifest_schema(), indent=2, ensure_ascii=False) + "\n"
