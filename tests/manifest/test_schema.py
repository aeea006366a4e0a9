from __future__ import annotations

import json
from pathlib import Path

from bootstrapper.manifest import fields as F
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
