"""The native format's JSON Schema, made from the same field table the loader checks against.

`bootstrapper schema` prints it; manifests/schema.json is the committed copy that editors use
(via the `yaml-language-server: $schema=` line), and a test fails when the two drift apart.
"""

from __future__ import annotations

import json
from typing import Any

from bootstrapper.manifest import fields as F

SCHEMA_ID = "https://bootstrapper.invalid/schema/manifest-1.json"


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


def manifest_schema() -> dict[str, Any]:
    def props(table: tuple[F.Field, ...]) -> dict[str, Any]:
        return {f.name: _field(f) for f in table if F.NATIVE in f.formats}

    top = props(F.TOP_FIELDS)
    top["format"] = {"const": 1, "description": "The native format's version: 1."}
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
