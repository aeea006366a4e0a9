"""The two signing settings from every source, and the accepted serial in the state file."""

from __future__ import annotations

import json
import plistlib
from pathlib import Path

import pytest

from bootstrapper.config import load_config
from bootstrapper.engine.source import Trust
from bootstrapper.engine.state import StateStore, accepted_serial, read_state
from bootstrapper.errors import ConfigError, SignatureError
from bootstrapper.paths import Paths

DATA = Path(__file__).parent.parent / "data" / "minisign"
OURS = (DATA / "ours.pub").read_text().splitlines()[1]
THEIRS = (DATA / "minisign.pub").read_text().splitlines()[1]


def paths_with_profile(tmp_path: Path, prefs: dict[str, object]) -> Paths:
    paths = Paths(root=tmp_path)
    paths.managed_prefs.parent.mkdir(parents=True, exist_ok=True)
    paths.managed_prefs.write_bytes(plistlib.dumps(prefs))
    return paths


def test_keys_and_floor_come_from_the_profile(tmp_path: Path) -> None:
    paths = paths_with_profile(tmp_path, {"manifest_public_keys": [OURS, THEIRS], "manifest_min_serial": 4})
    config, warnings = load_config(paths, {})
    assert warnings == []
    assert config.manifest_public_keys == [OURS, THEIRS]
    assert config.manifest_min_serial == 4
    trust = Trust.from_config(config, last_serial=6)
    assert [k.key_id for k in trust.keys] == ["CB505562F96391B0", "AAE13D5597FDBA5C"]
    assert (trust.min_serial, trust.last_serial, trust.required) == (4, 6, True)


def test_the_environment_separates_keys_with_commas_and_overrides_the_profile(tmp_path: Path) -> None:
    paths = paths_with_profile(tmp_path, {"manifest_public_keys": [THEIRS]})
    env = {
        "BOOTSTRAPPER_MANIFEST_PUBLIC_KEYS": f" {OURS} ,{THEIRS},",
        "BOOTSTRAPPER_MANIFEST_MIN_SERIAL": "2",
    }
    config, _ = load_config(paths, env)
    assert config.manifest_public_keys == [OURS, THEIRS]
    assert config.manifest_min_serial == 2
    assert config.sources["manifest_public_keys"] == "environment"


def test_a_sloppy_profile_string_reads_like_the_environment(tmp_path: Path) -> None:
    config, _ = load_config(paths_with_profile(tmp_path, {"manifest_public_keys": OURS}), {})
    assert config.manifest_public_keys == [OURS]


def test_flags_replace_the_configured_keys(tmp_path: Path) -> None:
    paths = paths_with_profile(tmp_path, {"manifest_public_keys": [THEIRS]})
    config, _ = load_config(paths, {}, {"manifest_public_keys": [OURS]})
    assert config.manifest_public_keys == [OURS]


def test_no_keys_by_default_means_no_check(tmp_path: Path) -> None:
    config, _ = load_config(Paths(root=tmp_path), {})
    assert config.manifest_public_keys == []
    assert config.manifest_min_serial == 0
    assert not Trust.from_config(config).required


@pytest.mark.parametrize(
    ("prefs", "expected"),
    [
        ({"manifest_public_keys": {"key": OURS}}, "expected a list of texts"),
        ({"manifest_public_keys": [OURS, 3]}, "expected a list of texts"),
        ({"manifest_min_serial": -1}, "expected a number ≥ 0"),
        ({"manifest_min_serial": "ten"}, "expected a whole number"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, prefs: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as caught:
        load_config(paths_with_profile(tmp_path, prefs), {})
    assert next(iter(prefs)) in str(caught.value)


def test_a_malformed_configured_key_is_refused_by_name(tmp_path: Path) -> None:
    config, _ = load_config(paths_with_profile(tmp_path, {"manifest_public_keys": ["RWQshort"]}), {})
    with pytest.raises(SignatureError, match=r"public key 'RWQshort': malformed"):
        Trust.from_config(config)


def test_the_accepted_serial_only_grows_and_survives_a_reload(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    assert accepted_serial(path) is None
    store = StateStore.load(path)
    store.accept_serial(None)  # an unsigned or serial-less manifest records nothing
    assert not path.exists()
    store.accept_serial(5)
    store.accept_serial(3)
    assert accepted_serial(path) == 5
    assert StateStore.load(path).state.accepted_serial == 5


def test_a_state_file_from_before_the_field_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    StateStore.load(path).save()
    doc = json.loads(path.read_text())
    del doc["accepted_serial"]
    path.write_text(json.dumps(doc))
    assert read_state(path).accepted_serial is None
    doc["accepted_serial"] = "5"
    path.write_text(json.dumps(doc))
    assert accepted_serial(path) is None  # malformed: set aside by the daemon, never trusted
