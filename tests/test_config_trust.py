"""The trust settings: Team IDs as a list from any source, secrets redacted, the TLS trust choice."""

from __future__ import annotations

import plistlib
from pathlib import Path

import pytest

from bootstrapper.config import load_config
from bootstrapper.errors import ConfigError
from bootstrapper.paths import Paths


def _paths(tmp_path: Path, prefs: dict[str, object] | None = None) -> Paths:
    paths = Paths(root=tmp_path)
    if prefs is not None:
        paths.managed_prefs.parent.mkdir(parents=True, exist_ok=True)
        paths.managed_prefs.write_bytes(plistlib.dumps(prefs))
    return paths


def test_team_ids_from_a_profile_array_and_from_the_environment(tmp_path: Path) -> None:
    config, _ = load_config(_paths(tmp_path, {"allowed_team_ids": ["JME5BW3F3R"]}))
    assert config.allowed_team_ids == ["JME5BW3F3R"]
    config, _ = load_config(_paths(tmp_path), {"BOOTSTRAPPER_ALLOWED_TEAM_IDS": "JME5BW3F3R, T4SK8ZXCXG"})
    assert config.allowed_team_ids == ["JME5BW3F3R", "T4SK8ZXCXG"]


def test_a_bad_team_id_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_paths(tmp_path, {"allowed_team_ids": ["nope"]}))
    assert "allowed_team_ids from" in str(err.value)
    assert "Team IDs of 10 capital letters and digits" in str(err.value)


def test_script_secrets_are_redacted_and_bad_names_do_not_show_values(tmp_path: Path) -> None:
    config, _ = load_config(_paths(tmp_path, {"script_secrets": {"API_TOKEN": "hunter22"}}))
    assert config.script_secrets == {"API_TOKEN": "hunter22"}
    assert config.redacted()["script_secrets"] == "<redacted>"
    with pytest.raises(ConfigError) as err:
        load_config(_paths(tmp_path, {"script_secrets": {"api-token": "hunter22"}}))
    assert "hunter22" not in str(err.value)


def test_tls_trust_defaults_to_the_system_store(tmp_path: Path) -> None:
    config, _ = load_config(_paths(tmp_path))
    assert config.tls_trust == "system"
    with pytest.raises(ConfigError, match="one of system, certifi"):
        load_config(_paths(tmp_path), {"BOOTSTRAPPER_TLS_TRUST": "keychain"})


def test_secret_settings_stay_out_of_repr(tmp_path: Path) -> None:
    config, _ = load_config(_paths(tmp_path, {"script_secrets": {"API_TOKEN": "hunter22"}}))
    assert "hunter22" not in repr(config)
    assert "tls_trust='system'" in repr(config)
