"""`convert`: InstallApplications JSON to native YAML keeps what every item means."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bootstrapper.cli import main
from bootstrapper.manifest.convert import native_path, raw_hashes, to_native
from bootstrapper.manifest.load import load_bytes, load_file
from bootstrapper.manifest.model import Format, Item
from tests.manifest.test_installapplications import MANIFESTS, VALID


def _meaning(item: Item) -> Item:
    """An item with what conversion changes on purpose normalized away."""
    return dataclasses.replace(item, line=0, file=native_path(item.file) if item.file else None)


#: The real deployments (README examples carry placeholder hashes: see test_placeholders_survive…).
DEPLOYED = [p for p in VALID if "README" not in p.name]


def test_there_are_real_deployments_to_round_trip() -> None:
    assert len(DEPLOYED) >= 2


@pytest.mark.parametrize("path", DEPLOYED, ids=[p.name for p in DEPLOYED])
def test_convert_round_trip_keeps_every_item(path: Path) -> None:
    original = load_file(path)
    text, _ = to_native(original, raw_hashes(path.read_bytes()))
    converted = load_bytes(text.encode(), "out.yaml", local=True)
    assert converted.manifest.format is Format.NATIVE
    before = [_meaning(i) for i in original.manifest.items]
    after = [_meaning(i) for i in converted.manifest.items]
    for a, b in zip(before, after, strict=True):
        # A package without packageid/version is installed every time: that is `required: true`.
        expected = dataclasses.replace(
            a, required=a.required or (a.type.value == "package" and a.packageid is None)
        )
        assert b == expected


def test_placeholders_survive_so_the_admin_sees_them() -> None:
    path = MANIFESTS / "macadmins-installapplications-README-example.json"
    text, notes = to_native(load_file(path), raw_hashes(path.read_bytes()))
    assert "hash: sha256 hash" in text
    assert any("is not a sha256; put the real one in" in n for n in notes)


def test_converted_file_has_the_schema_line() -> None:
    path = MANIFESTS / "bonniernews-bootstrap.json"
    text, notes = to_native(load_file(path))
    assert text.startswith("# yaml-language-server: $schema=schema.json\n")
    assert (
        notes[0]
        == "3 file(s) moved from /Library/installapplications/ to /Library/bootstrapper/; check scripts that refer to the old folder"
    )


def test_native_manifests_are_not_converted() -> None:
    loaded = load_bytes(b"format: 1\n", "x.yaml")
    with pytest.raises(ValueError, match="convert takes"):
        to_native(loaded)


def _ia_with_conditions(tmp_path: Path) -> Path:
    """A bootstrap.json whose conditions are mappings and lists of tests: `validate` accepts it."""
    digest = "a" * 64
    doc = {
        "setupassistant": [
            {
                "name": "mapped",
                "type": "rootscript",
                "url": "https://example.com/a.sh",
                "hash": digest,
                "file": "/Library/installapplications/a.sh",
                "skip_if": {"arch": "x86_64", "os_version": ">= 14.2", "path_exists": "/Applications/A.app"},
            },
            {
                "name": "either",
                "type": "rootscript",
                "url": "https://example.com/b.sh",
                "hash": digest,
                "file": "/Library/installapplications/b.sh",
                "skip_if": [{"model": "MacBookAir*"}, {"script": "test -e /tmp/x"}],
            },
            {
                "name": "word",
                "type": "rootscript",
                "url": "https://example.com/c.sh",
                "hash": digest,
                "file": "/Library/installapplications/c.sh",
                "skip_if": "apple_silicon",
            },
        ]
    }
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_condition_mapping_converts_and_keeps_its_meaning(tmp_path: Path) -> None:
    path = _ia_with_conditions(tmp_path)
    original = load_file(path)
    text, _ = to_native(original)
    assert "skip_if: apple_silicon" in text
    converted = load_bytes(text.encode(), "out.yaml", local=True).manifest.items
    assert [i.skip_if for i in converted] == [i.skip_if for i in original.manifest.items]


def test_convert_command_exits_0_on_a_condition_mapping(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _ia_with_conditions(tmp_path)
    assert main(["validate", str(path)]) == 0
    capsys.readouterr()
    assert main(["convert", str(path)]) == 0
    out = capsys.readouterr()
    assert "os_version: '>= 14.2'" in out.out and "model: MacBookAir*" in out.out
    assert "problem" not in out.err
