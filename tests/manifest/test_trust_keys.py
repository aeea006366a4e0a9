"""The keys of trust beyond the peers: `team_id`, `secrets`, `secrets_to_user`."""

from __future__ import annotations

import json

from bootstrapper.errors import ManifestError
from bootstrapper.manifest.load import load_bytes

HASH = "a" * 64


def _problems(stage: str, item: dict[str, object]) -> list[str]:
    text = json.dumps({"format": 1, stage: [{"name": "x", "url": "https://e.com/x", "hash": HASH, **item}]})
    try:
        load_bytes(text.encode(), "m.yaml")
    except ManifestError as exc:
        return exc.problems
    return []


def test_team_id_is_read_onto_the_item() -> None:
    doc = {
        "format": 1,
        "setupassistant": [
            {
                "name": "p",
                "type": "package",
                "url": "https://e.com/p.pkg",
                "hash": HASH,
                "required": True,
                "team_id": "JME5BW3F3R",
            }
        ],
    }
    loaded = load_bytes(json.dumps(doc).encode(), "m.yaml")
    assert loaded.manifest.items[0].team_id == "JME5BW3F3R"


def test_a_team_id_that_is_not_one_is_an_error() -> None:
    problems = _problems("setupassistant", {"type": "package", "required": True, "team_id": "jme5bw3f3r"})
    assert len(problems) == 1
    assert "team_id: 'jme5bw3f3r' is not a Team ID" in problems[0]


def test_secrets_are_read_onto_a_root_script() -> None:
    doc = {
        "format": 1,
        "setupassistant": [
            {
                "name": "s",
                "type": "rootscript",
                "url": "https://e.com/s",
                "hash": HASH,
                "secrets": ["API_TOKEN"],
            }
        ],
    }
    loaded = load_bytes(json.dumps(doc).encode(), "m.yaml")
    assert loaded.manifest.items[0].secrets == ("API_TOKEN",)


def test_a_secret_name_must_be_a_variable_name() -> None:
    problems = _problems("setupassistant", {"type": "rootscript", "secrets": ["api-token"]})
    assert len(problems) == 1
    assert "secrets: 'api-token' is not a secret's name" in problems[0]


def test_a_user_script_needs_secrets_to_user() -> None:
    problems = _problems("userland", {"type": "userscript", "secrets": ["API_TOKEN"]})
    assert len(problems) == 1
    assert "add `secrets_to_user: true` if that is intended" in problems[0]
    assert (
        _problems("userland", {"type": "userscript", "secrets": ["API_TOKEN"], "secrets_to_user": True}) == []
    )


def test_a_package_takes_no_secrets() -> None:
    problems = _problems("setupassistant", {"type": "package", "required": True, "secrets": ["API_TOKEN"]})
    assert any("secrets: only scripts take secrets, not package" in p for p in problems)
