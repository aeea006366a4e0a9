"""The managed-preferences profile, the Jamf schema and docs/settings.md, generated from config.py."""

from __future__ import annotations

import json
import plistlib
import typing
from pathlib import Path
from typing import Any

import pytest

from bootstrapper import cli
from bootstrapper.config import base_type, definitions, load_config, types
from bootstrapper.deploy.profile import (
    example_settings,
    jamf_schema,
    mobileconfig,
    parse_assignments,
    settings_markdown,
)
from bootstrapper.errors import ConfigError, UsageError
from bootstrapper.paths import PREFS_DOMAIN, Paths
from pkg.tooling import committed

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "pkg" / "profile" / f"{PREFS_DOMAIN}.mobileconfig"
PLIST_TYPES: dict[type, type] = {bool: bool, int: int, float: float, str: str, dict: dict, list: list}


def settings_payload(data: bytes) -> dict[str, Any]:
    profile = plistlib.loads(data)
    assert profile["PayloadType"] == "Configuration"
    assert profile["PayloadScope"] == "System"
    [content] = [p for p in profile["PayloadContent"] if p["PayloadType"] == PREFS_DOMAIN]
    return {k: v for k, v in content.items() if not k.startswith("Payload")}


def test_the_example_profile_sets_only_known_settings_of_the_right_type() -> None:
    settings = settings_payload(EXAMPLE.read_bytes())
    known = types()
    assert settings["manifest_url"].startswith("https://")
    for key, value in settings.items():
        assert key in known, key
        kind = base_type(known[key])
        # bool is an int in Python: compare exact types, so <true/> never passes for an <integer>.
        assert type(value) is PLIST_TYPES[kind], (key, value)


def test_the_example_profile_uses_integer_and_boolean_elements() -> None:
    text = EXAMPLE.read_text()
    assert "<key>concurrency</key>\n\t\t\t<integer>4</integer>" in text
    assert "<key>cleanup</key>\n\t\t\t<true/>" in text
    assert "<key>connect_timeout</key>\n\t\t\t<real>15.0</real>" in text


def test_the_daemon_reads_the_profile_without_a_warning(tmp_path: Path) -> None:
    paths = Paths(root=tmp_path)
    paths.managed_prefs.parent.mkdir(parents=True)
    [content] = [
        p for p in plistlib.loads(EXAMPLE.read_bytes())["PayloadContent"] if p["PayloadType"] == PREFS_DOMAIN
    ]
    paths.managed_prefs.write_bytes(plistlib.dumps(content))
    config, warnings = load_config(paths)
    assert warnings == []
    assert config.manifest_url == example_settings()["manifest_url"]
    assert config.sources["concurrency"] == str(paths.managed_prefs)


def test_committed_generated_files_match_the_generators() -> None:
    stale = [str(p.relative_to(REPO)) for p in committed.stale(REPO)]
    assert stale == [], "run `python pkg/build.py generate` and commit the result"


def test_a_profile_with_admin_values_is_type_checked() -> None:
    values = parse_assignments(["concurrency=8", "allow_http=false", "headers.Authorization=Bearer t"])
    assert values == {"concurrency": 8, "allow_http": False, "headers": {"Authorization": "Bearer t"}}
    settings = settings_payload(mobileconfig(values, identifier="com.example.boot", organization="Example"))
    assert settings == values
    with pytest.raises(ConfigError, match="concurrency from --set: expected a whole number"):
        parse_assignments(["concurrency=eight"])
    with pytest.raises(ConfigError, match="log_level from --set: expected one of debug"):
        parse_assignments(["log_level=loud"])
    with pytest.raises(UsageError, match="unknown setting 'concurency'"):
        parse_assignments(["concurency=8"])
    with pytest.raises(UsageError, match=r"headers is a dictionary; use headers\.KEY=VALUE"):
        parse_assignments(["headers=x"])
    with pytest.raises(UsageError, match="expected key=value"):
        parse_assignments(["manifest_url"])
    with pytest.raises(UsageError, match="nope: not a setting"):
        mobileconfig({"nope": 1})


def test_profiles_are_reproducible_and_identified_by_their_identifier() -> None:
    a = plistlib.loads(mobileconfig({}, identifier="com.example.a"))
    b = plistlib.loads(mobileconfig({}, identifier="com.example.b"))
    assert mobileconfig({}, identifier="com.example.a") == mobileconfig({}, identifier="com.example.a")
    assert a["PayloadUUID"] != b["PayloadUUID"]


def test_the_jamf_schema_describes_every_setting_with_its_type() -> None:
    schema = jamf_schema()
    assert list(schema["properties"]) == [f.name for f in definitions()]
    json_types = {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        dict: "object",
        list: "array",
    }
    for f in definitions():
        prop = schema["properties"][f.name]
        assert prop["type"] == json_types[base_type(types()[f.name])], f.name
        assert prop["description"].startswith(f.metadata["doc"])
        if f.metadata["choices"]:
            assert prop["enum"] == list(f.metadata["choices"])
        if "default" in prop:
            assert prop["default"] == f.default
    assert schema["properties"]["concurrency"]["minimum"] == 1
    orders = [p["property_order"] for p in schema["properties"].values()]
    assert orders == sorted(set(orders))
    assert json.loads((REPO / "pkg" / "profile" / "jamf-schema.json").read_text()) == schema


def test_settings_doc_has_a_row_per_setting() -> None:
    text = settings_markdown()
    for f in definitions():
        assert f"| `{f.name}` |" in text
    optional = [f.name for f in definitions() if type(None) in typing.get_args(types()[f.name])]
    assert all(f"| `{name}` | string | not set |" in text for name in optional if name != "headers")


def test_cli_prints_a_profile_and_the_schema(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["deploy", "profile", "--set", "manifest_url=https://e.com/m.yaml"]) == 0
    assert settings_payload(capsys.readouterr().out.encode()) == {"manifest_url": "https://e.com/m.yaml"}
    out = tmp_path / "p.mobileconfig"
    assert cli.main(["deploy", "profile", "--set", "cleanup=no", "-o", str(out)]) == 0
    assert settings_payload(out.read_bytes()) == {"cleanup": False}
    assert cli.main(["deploy", "profile", "--set", "concurrency=0"]) == 2
    assert "concurrency from --set: expected a number ≥ 1, got '0'" in capsys.readouterr().err
    assert cli.main(["deploy", "jamf-schema"]) == 0
    assert json.loads(capsys.readouterr().out) == jamf_schema()


def login_items(data: bytes) -> dict[str, Any]:
    [payload] = [
        p for p in plistlib.loads(data)["PayloadContent"] if p["PayloadType"] == "com.apple.servicemanagement"
    ]
    return payload


def test_the_profile_makes_the_daemon_and_agent_managed_login_items() -> None:
    paths = Paths()
    payload = login_items(EXAMPLE.read_bytes())
    assert payload["PayloadVersion"] == 1 and payload["PayloadIdentifier"].endswith(".loginitems")
    assert [(r["RuleType"], r["RuleValue"]) for r in payload["Rules"]] == [
        ("Label", paths.daemon_label),
        ("Label", paths.agent_label),
    ]
    # only the keys Apple's schema defines for a rule
    assert all(set(rule) <= {"RuleType", "RuleValue", "Comment"} for rule in payload["Rules"])
    uuids = [p["PayloadUUID"] for p in plistlib.loads(EXAMPLE.read_bytes())["PayloadContent"]]
    assert len(set(uuids)) == 2


def test_a_team_id_adds_a_team_rule_and_a_bad_one_is_refused() -> None:
    rules = login_items(mobileconfig({}, team_id="ABCDE12345"))["Rules"]
    assert rules[-1] == {
        "RuleType": "TeamIdentifier",
        "RuleValue": "ABCDE12345",
        "Comment": "bootstrapper's signer",
    }
    with pytest.raises(UsageError, match="expected the 10-character Apple Team ID"):
        mobileconfig({}, team_id="Example Inc")


def test_the_team_id_flag_reaches_the_login_items_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p.mobileconfig"
    assert cli.main(["deploy", "profile", "--team-id", "ABCDE12345", "-o", str(out)]) == 0
    assert login_items(out.read_bytes())["Rules"][-1]["RuleValue"] == "ABCDE12345"
    capsys.readouterr()
    assert cli.main(["deploy", "profile", "--team-id", "Example Inc"]) == 2
    err = capsys.readouterr().err
    assert "--team-id 'Example Inc': expected the 10-character Apple Team ID" in err
    assert len(err.strip().splitlines()) == 1
