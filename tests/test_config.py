"""Settings precedence with real plist files: defaults < package plist < managed prefs < env < flags."""

from __future__ import annotations

import plistlib
from pathlib import Path

import pytest

from bootstrapper.config import Config, load_config
from bootstrapper.errors import ConfigError
from bootstrapper.paths import Paths


def write(path: Path, data: dict[str, object], fmt: plistlib.PlistFormat = plistlib.FMT_XML) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(plistlib.dumps(data, fmt=fmt))


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(root=tmp_path)


def test_defaults_without_any_source(paths: Paths) -> None:
    config, warnings = load_config(paths)
    assert config.concurrency == 4
    assert config.cleanup is True
    assert warnings == []


def test_each_source_overrides_the_one_below(paths: Paths) -> None:
    write(
        paths.config_plist, {"concurrency": 2, "retries_unused": 1, "log_level": "debug", "depnotify": True}
    )
    write(
        paths.managed_prefs,
        {"concurrency": 6, "manifest_url": "https://mdm.example.com/m.yaml"},
        plistlib.FMT_BINARY,
    )
    env = {"BOOTSTRAPPER_CONCURRENCY": "8", "BOOTSTRAPPER_ALLOW_HTTP": "true", "UNRELATED": "x"}
    config, warnings = load_config(paths, env, {"concurrency": 9, "allow_http": None})
    assert config.concurrency == 9
    assert config.sources["concurrency"] == "command line"
    assert config.allow_http is True
    assert config.sources["allow_http"] == "environment"
    assert config.manifest_url == "https://mdm.example.com/m.yaml"
    assert config.sources["manifest_url"] == str(paths.managed_prefs)
    assert config.log_level == "debug"
    assert config.depnotify is True
    assert warnings == [f"{paths.config_plist}: unknown setting 'retries_unused' ignored"]


def test_integers_booleans_reals_and_dicts_from_a_binary_profile(paths: Paths) -> None:
    write(
        paths.managed_prefs,
        {
            "max_attempts": 7,
            "read_timeout": 12.5,
            "swiftdialog": True,
            "headers": {"Authorization": "Bearer s3cret"},
            "PayloadUUID": "ignored-silently",
        },
        plistlib.FMT_BINARY,
    )
    config, warnings = load_config(paths)
    assert config.max_attempts == 7
    assert config.read_timeout == 12.5
    assert config.swiftdialog is True
    assert config.headers == {"Authorization": "Bearer s3cret"}
    assert config.redacted()["headers"] == "<redacted>"
    assert warnings == []


def test_bad_value_names_key_source_and_expectation(paths: Paths) -> None:
    write(paths.managed_prefs, {"concurrency": "many"})
    with pytest.raises(ConfigError) as info:
        load_config(paths)
    assert str(info.value) == (
        f"setting concurrency from {paths.managed_prefs}: expected a whole number, got 'many'"
    )


def test_bad_env_value_names_the_variable(paths: Paths) -> None:
    with pytest.raises(
        ConfigError, match=r"setting BOOTSTRAPPER_CLEANUP from environment: expected true or false"
    ):
        load_config(paths, {"BOOTSTRAPPER_CLEANUP": "maybe"})


def test_secret_values_are_not_echoed_in_errors(paths: Paths) -> None:
    write(paths.managed_prefs, {"webhook_url": 42})
    with pytest.raises(ConfigError) as info:
        load_config(paths)
    assert "42" not in str(info.value)
    assert "<redacted>" in str(info.value)


def test_boolean_is_not_an_integer(paths: Paths) -> None:
    write(paths.managed_prefs, {"concurrency": True})
    with pytest.raises(ConfigError, match="expected a whole number"):
        load_config(paths)


def test_choices_are_enforced(paths: Paths) -> None:
    with pytest.raises(ConfigError, match="expected one of retry, cleanup"):
        load_config(paths, flags={"on_failure": "panic"})


def test_corrupt_plist_is_a_clear_error(paths: Paths) -> None:
    paths.managed_prefs.parent.mkdir(parents=True)
    paths.managed_prefs.write_bytes(b"<plist><dict><key>x</key>")
    with pytest.raises(ConfigError, match="not a valid property list"):
        load_config(paths)


def test_minimums_are_enforced(paths: Paths) -> None:
    with pytest.raises(ConfigError, match="expected a number ≥ 1"):
        load_config(paths, flags={"concurrency": 0})


def test_config_is_a_frozen_value() -> None:
    with pytest.raises(AttributeError):
        Config().concurrency = 3  # type: ignore[misc]
