from __future__ import annotations

import json
from pathlib import Path

from bootstrapper.manifest import fields as F
from bootstrapper.manifest.kinds import SPECS
from bootstrapper.manifest.schema import manifest_schema, schema_text

ROOT = Path(__file__).resolve().parents[2]


def test_committed_schema_matches_the_field_definitions() -> None:
    committed = (ROOT / "manifests" / "schema.json").read_text()
    assert committed == schema_text(), (
        "manifests/schema.json is stale: run `bootstrapper schema > manifests/schema.json`"
    )


def test_schema_lists_every_native_item_key() -> None:
    item = manifest_schema()["$defs"]["item"]
    assert set(item["properties"]) == {f.name for f in F.ITEM_FIELDS if F.NATIVE in f.formats}
    assert item["additionalProperties"] is False
    assert json.loads(schema_text())["properties"]["format"] == {
        "const": 1,
        "description": "The native format's version: 1.",
    }


def test_example_manifests_point_editors_at_the_schema() -> None:
    examples = sorted((ROOT / "manifests").glob("*.yaml"))
    assert examples
    for path in examples:
        assert path.read_text().startswith("# yaml-language-server: $schema=schema.json\n"), path.name


def test_each_type_brings_its_rules_into_the_schema() -> None:
    rules = {
        r["if"]["properties"]["type"]["const"]: r["then"] for r in manifest_schema()["$defs"]["item"]["allOf"]
    }
    assert set(rules) == {t.value for t in SPECS}
    assert rules["wait"]["required"] == ["path"]
    assert rules["wait"]["properties"]["url"] is False
    assert rules["rootfile"]["required"] == ["file", "hash", "url"]
    # A package needs packageid and version unless it is installed every time.
    assert {"required": ["packageid", "version"]} in rules["package"]["anyOf"]
    # packageid on a script is only a warning in the loader, so the schema lets it be.
    assert "packageid" not in rules["rootscript"].get("properties", {})


def test_each_stage_lists_only_the_types_allowed_in_it() -> None:
    props = manifest_schema()["properties"]
    assert props["preflight"]["items"]["properties"]["type"]["enum"] == ["rootscript"]
    userland = props["userland"]["items"]["properties"]["type"]["enum"]
    assert userland == [t.value for t in SPECS]
    assert "userscript" not in props["setupassistant"]["items"]["properties"]["type"]["enum"]
