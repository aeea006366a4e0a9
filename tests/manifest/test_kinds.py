"""The type table drives the loader: every rule a type declares is one the loader enforces."""

from __future__ import annotations

import json

import pytest

from bootstrapper.errors import ManifestError
from bootstrapper.manifest import fields as F
from bootstrapper.manifest.kinds import SPECS, TYPE_KEYS, ItemType, KindSpec, spec_for
from bootstrapper.manifest.load import load_bytes
from bootstrapper.manifest.model import Stage
from tests.manifest.helpers import HASH

#: A value for each type-specific key that is valid where the key is taken.
VALUES: dict[str, object] = {
    "url": "https://example.com/x",
    "hash": HASH,
    "file": "/Library/bootstrapper/x",
    "path": "/Applications/X.app",
    "packageid": "com.example.x",
    "version": "1.0",
    "donotwait": True,
    "arguments": ["--quiet"],
    "team_id": "JME5BW3F3R",
    "secrets": ["API_TOKEN"],
    "secrets_to_user": True,
}


def minimal(spec: KindSpec) -> dict[str, object]:
    """The smallest native item of this type that loads, from what the table says it needs."""
    item: dict[str, object] = {"name": "x", "type": spec.type.value}
    item.update({key: VALUES[key] for key in spec.needs})
    if spec.has_receipt:
        item.update(packageid=VALUES["packageid"], version=VALUES["version"])
    return item


def load_native(stage: Stage, item: dict[str, object]) -> list[str]:
    """The errors of a native manifest holding `item` in `stage` (empty when it loads)."""
    text = json.dumps({"format": 1, stage.value: [item]})
    try:
        load_bytes(text.encode(), "m.yaml")
    except ManifestError as exc:
        return exc.problems
    return []


def test_every_type_has_one_spec_and_every_type_key_a_rule_for_the_other_types() -> None:
    assert set(SPECS) == set(ItemType)
    assert all(spec.type is t for t, spec in SPECS.items())
    item_fields = {f.name: f for f in F.ITEM_FIELDS}
    assert {key for key in TYPE_KEYS if item_fields[key].elsewhere is None} == set()
    assert spec_for("wait") is SPECS[ItemType.WAIT]
    assert spec_for("pakage") is None


@pytest.mark.parametrize("stage", list(Stage), ids=[s.value for s in Stage])
@pytest.mark.parametrize("spec", list(SPECS.values()), ids=[t.value for t in SPECS])
def test_a_type_loads_in_exactly_the_stages_its_spec_allows(spec: KindSpec, stage: Stage) -> None:
    problems = load_native(stage, minimal(spec))
    if stage in spec.stages:
        assert problems == []
    else:
        assert len(problems) == 1
        assert f"type: {spec.type.value} items run as the logged-in user" in problems[0] or (
            f"type: {stage.value} holds root scripts only, not {spec.type.value}" in problems[0]
        )


@pytest.mark.parametrize("spec", list(SPECS.values()), ids=[t.value for t in SPECS])
def test_each_key_a_type_needs_is_reported_missing(spec: KindSpec) -> None:
    stage = Stage.USERLAND
    for key in sorted(spec.needs):
        item = minimal(spec)
        del item[key]
        problems = load_native(stage, item)
        assert [p for p in problems if f"→ {key}: missing" in p], (key, problems)


@pytest.mark.parametrize("spec", list(SPECS.values()), ids=[t.value for t in SPECS])
def test_type_keys_a_type_does_not_take_are_reported_as_their_rule_says(spec: KindSpec) -> None:
    item_fields = {f.name: f for f in F.ITEM_FIELDS}
    for key in sorted(TYPE_KEYS - spec.keys):
        rule = item_fields[key].elsewhere
        assert rule is not None
        problems = load_native(Stage.USERLAND, {**minimal(spec), key: VALUES[key]})
        expected = f"→ {key}: {rule[1].format(type=spec.type.value)}"
        if rule[0] == "warn":
            assert problems == []
        else:
            assert [p for p in problems if p.endswith(expected)], (key, problems)


def test_the_loader_applies_the_type_default_timeout_only_when_nothing_else_says() -> None:
    wait = SPECS[ItemType.WAIT]
    text = json.dumps(
        {"format": 1, "userland": [minimal(wait), {**minimal(wait), "name": "y", "timeout": 7}]}
    )
    items = load_bytes(text.encode(), "m.yaml").manifest.items
    assert [i.timeout for i in items] == [wait.default_timeout, 7.0]
    script = minimal(SPECS[ItemType.ROOTSCRIPT])
    text = json.dumps({"format": 1, "userland": [script]})
    assert load_bytes(text.encode(), "m.yaml").manifest.items[0].timeout is None


def test_the_native_format_takes_a_rootscript_already_on_disk_too() -> None:
    """So that `convert` can write what an InstallApplications manifest says."""
    doc = (
        "format: 1\nsetupassistant:\n  - name: s\n    type: rootscript\n"
        f"    file: /Library/Scripts/s.sh\n    hash: {'a' * 64}\n"
    )
    (script,) = load_bytes(doc.encode(), "m.yaml").manifest.items
    assert script.url is None and str(script.file) == "/Library/Scripts/s.sh"
