"""A signed manifest runs in the sandbox; a tampered, expired, foreign or replayed one starts nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bootstrapper.engine.state import accepted_serial
from bootstrapper.manifest import signing
from bootstrapper.paths import Paths
from tests.engine.conftest import result, run_sandbox
from tests.support.site import Site, serve

FUTURE = datetime.now(UTC) + timedelta(days=30)


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    """(public key line, secret key text): a fresh, unencrypted test key."""
    pub, sec = signing.generate_keypair("test key", password=None)
    return pub.splitlines()[1], sec


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from serve(tmp_path / "site")


def publish(site: Site, marker: str, *, exit_code: int = 0) -> tuple[str, bytes]:
    """A manifest whose one root script leaves `marker` in the sandbox; returns its URL and bytes."""
    script = site.script(f"{marker}.sh", f'echo {marker} >> "$BOOTSTRAPPER_ROOT/ran"; exit {exit_code}')
    item = {"name": marker, "type": "rootscript", "fail_policy": "failure_is_not_an_option", **script}
    url = site.manifest({"setupassistant": [item]})
    return url, (site.root / "m.yaml").read_bytes()


def sign_as(site: Site, secret: str, *, data: bytes | None = None, **fields: Any) -> None:
    """Publish m.yaml.minisig for the published manifest (or for other `data`)."""
    data = (site.root / "m.yaml").read_bytes() if data is None else data
    (site.root / "m.yaml.minisig").write_text(signing.sign(data, secret, **fields))


def started(paths: Paths) -> list[str]:
    """The steps the event log says started (none when the run never got that far)."""
    log = paths.log_dir / "events.jsonl"
    if not log.exists():
        return []
    events = [json.loads(line) for line in log.read_text().splitlines()]
    return [e.get("id", "?") for e in events if e["event"] == "step_started"]


def ran(paths: Paths) -> list[str]:
    marker = paths.root / "ran"
    return marker.read_text().split() if marker.exists() else []


def refused(sandbox: Paths, url: str, key: str, **settings: Any) -> str:
    """The run starts no step, exits 2 and records why (a counted attempt, like any bad start)."""
    assert run_sandbox(sandbox, url, manifest_public_keys=[key], **settings) == 2
    assert started(sandbox) == []
    assert ran(sandbox) == []
    record = json.loads(sandbox.result_file.read_text())
    assert record["result"] == "failed"
    message = str(record["reason"])
    assert "\n" not in message
    return message


def test_a_signed_manifest_runs_and_its_serial_is_remembered(
    site: Site, sandbox: Paths, keys: tuple[str, str]
) -> None:
    key, secret = keys
    url, _ = publish(site, "signed", exit_code=1)
    sign_as(site, secret, serial=7, expires=FUTURE)
    # The step fails and on_failure is retry: the state stays for launchd's next attempt.
    assert run_sandbox(sandbox, url, manifest_public_keys=[key], on_failure="retry") == 1
    assert ran(sandbox) == ["signed"]
    assert accepted_serial(sandbox.state_file) == 7


def test_an_unsigned_run_is_unchanged_without_keys(site: Site, sandbox: Paths) -> None:
    url, _ = publish(site, "plain")
    assert run_sandbox(sandbox, url) == 0
    assert ran(sandbox) == ["plain"]
    assert result(sandbox)["result"] == "success"


def test_one_changed_byte_starts_nothing(site: Site, sandbox: Paths, keys: tuple[str, str]) -> None:
    key, secret = keys
    url, data = publish(site, "tampered")
    sign_as(site, secret, serial=1)
    (site.root / "m.yaml").write_bytes(data.replace(b"tampered", b"tamperee", 1))
    assert "bad signature from key" in refused(sandbox, url, key)


def test_an_expired_signature_starts_nothing(site: Site, sandbox: Paths, keys: tuple[str, str]) -> None:
    key, secret = keys
    url, _ = publish(site, "expired")
    sign_as(site, secret, serial=1, expires=datetime.now(UTC) - timedelta(minutes=1))
    assert "signature expired at" in refused(sandbox, url, key)


def test_another_key_starts_nothing(site: Site, sandbox: Paths, keys: tuple[str, str]) -> None:
    key, _ = keys
    _, other_secret = signing.generate_keypair(password=None)
    url, _ = publish(site, "foreign")
    sign_as(site, other_secret, serial=1)
    message = refused(sandbox, url, key)
    assert "signed by key" in message
    assert "this Mac trusts" in message


def test_a_missing_signature_starts_nothing(site: Site, sandbox: Paths, keys: tuple[str, str]) -> None:
    url, _ = publish(site, "unsigned")
    assert "signature missing" in refused(sandbox, url, keys[0])


def test_a_serial_below_the_profile_floor_starts_nothing(
    site: Site, sandbox: Paths, keys: tuple[str, str]
) -> None:
    key, secret = keys
    url, _ = publish(site, "old")
    sign_as(site, secret, serial=3)
    assert "below manifest_min_serial 4" in refused(sandbox, url, key, manifest_min_serial=4)


def test_a_replayed_older_manifest_starts_nothing(site: Site, sandbox: Paths, keys: tuple[str, str]) -> None:
    key, secret = keys
    url, _ = publish(site, "current", exit_code=1)
    sign_as(site, secret, serial=5)
    assert run_sandbox(sandbox, url, manifest_public_keys=[key], on_failure="retry") == 1
    assert ran(sandbox) == ["current"]
    events = (sandbox.log_dir / "events.jsonl").read_text()

    publish(site, "older")  # validly signed, but with a lower serial than this Mac accepted
    sign_as(site, secret, serial=4)
    before = started(sandbox)
    assert run_sandbox(sandbox, url, manifest_public_keys=[key], on_failure="retry") == 2
    assert ran(sandbox) == ["current"]
    assert started(sandbox) == before  # nothing new started; the refusal itself is recorded
    assert (sandbox.log_dir / "events.jsonl").read_text().startswith(events)
    assert (
        "serial 4 is below serial 5, the highest this Mac already"
        in json.loads(sandbox.result_file.read_text())["reason"]
    )
    assert accepted_serial(sandbox.state_file) == 5

    publish(site, "newer")
    sign_as(site, secret, serial=6)
    assert run_sandbox(sandbox, url, manifest_public_keys=[key]) == 0
    assert ran(sandbox) == ["current", "newer"]


# --- the real command line ------------------------------------------------------------------------


def _run(url: str, root: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "bootstrapper", "run", "--allow-http", "--manifest", url]
    return subprocess.run(
        [*argv, "--sandbox", str(root), *flags], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.slow
def test_run_with_public_key_flag_runs_a_signed_manifest(
    site: Site, tmp_path: Path, keys: tuple[str, str]
) -> None:
    key, secret = keys
    url, _ = publish(site, "flagged")
    sign_as(site, secret, serial=2, expires=FUTURE)
    done = _run(url, tmp_path / "mac", "--public-key", key)
    assert done.returncode == 0, done.stderr
    assert ran(Paths(root=tmp_path / "mac")) == ["flagged"]


def test_run_refuses_a_tampered_manifest_in_one_line_exit_2(
    site: Site, tmp_path: Path, keys: tuple[str, str]
) -> None:
    key, secret = keys
    url, data = publish(site, "flagged")
    sign_as(site, secret, data=data + b"\n")
    done = _run(url, tmp_path / "mac", "--public-key", key)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and "bad signature from key" in lines[0]
    paths = Paths(root=tmp_path / "mac")
    assert started(paths) == []
    assert ran(paths) == []


def test_the_environment_supplies_the_keys_to_run(site: Site, tmp_path: Path, keys: tuple[str, str]) -> None:
    key, _ = keys
    other, _ = signing.generate_keypair(password=None)
    url, _ = publish(site, "envkeys")
    env_keys = f"{other.splitlines()[1]}, {key}"
    argv = [sys.executable, "-m", "bootstrapper", "run", "--allow-http", "--manifest", url]
    done = subprocess.run(
        [*argv, "--sandbox", str(tmp_path / "mac")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "BOOTSTRAPPER_MANIFEST_PUBLIC_KEYS": env_keys},
    )
    assert done.returncode == 2
    assert "signature missing" in done.stderr
    assert ran(Paths(root=tmp_path / "mac")) == []
