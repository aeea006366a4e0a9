"""A package's Team ID is checked before `installer` runs: a real sandbox run with a real signed package."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootstrapper.paths import Paths
from tests.engine.conftest import result, run_sandbox
from tests.support.forged_pkg import forge
from tests.support.site import Site

INSTALLOMATOR = Path(__file__).resolve().parents[1] / "data" / "pkgs" / "installomator-10.3-signed.pkg"
SIGNER = "Developer ID Installer: Armin Briegel (JME5BW3F3R)"


def _package(site: Site, data: bytes, **keys: object) -> str:
    url, digest = site.add("Installomator.pkg", data)
    item = {"name": "Installomator", "type": "package", "url": url, "hash": digest, "required": True}
    item.update(fail_policy="failure_is_not_an_option", **keys)
    return site.manifest({"setupassistant": [item]})


def _installed(paths: Paths) -> bool:
    return (paths.root / "usr/local/Installomator").exists()


def test_the_right_team_installs(site: Site, sandbox: Paths) -> None:
    url = _package(site, INSTALLOMATOR.read_bytes(), team_id="JME5BW3F3R")
    assert run_sandbox(sandbox, url, allowed_team_ids=("ABCDE12345", "JME5BW3F3R")) == 0
    assert _installed(sandbox)


def test_another_team_is_refused_before_installer_runs(site: Site, sandbox: Paths) -> None:
    url = _package(site, INSTALLOMATOR.read_bytes(), team_id="ABCDE12345")
    assert run_sandbox(sandbox, url) == 1
    reason = result(sandbox)["steps"][0]["reason"]
    assert reason == (
        "refused: team_id ABCDE12345 expected a Developer ID Installer signature of that team,"
        f" found {SIGNER}"
    )
    assert not _installed(sandbox)


def test_the_settings_list_applies_to_every_package(site: Site, sandbox: Paths) -> None:
    url = _package(site, INSTALLOMATOR.read_bytes())
    assert run_sandbox(sandbox, url, allowed_team_ids=("ABCDE12345",)) == 1
    reason = result(sandbox)["steps"][0]["reason"]
    assert reason.startswith("refused: allowed_team_ids (ABCDE12345) expected")
    assert reason.endswith(f"found {SIGNER}")
    assert not _installed(sandbox)


@pytest.mark.parametrize("keep_apple_chain", [True, False])
def test_a_forged_signature_claiming_the_team_is_refused(
    site: Site, sandbox: Paths, tmp_path: Path, keep_apple_chain: bool
) -> None:
    forged = forge(INSTALLOMATOR, tmp_path / "f.pkg", SIGNER, "JME5BW3F3R", keep_apple_chain=keep_apple_chain)
    url = _package(site, forged.read_bytes(), team_id="JME5BW3F3R")
    assert run_sandbox(sandbox, url) == 1
    assert result(sandbox)["steps"][0]["reason"].startswith("refused: team_id JME5BW3F3R expected")
    assert not _installed(sandbox)


def test_an_unsigned_package_is_refused_when_a_team_is_required(site: Site, sandbox: Paths) -> None:
    munki = INSTALLOMATOR.parent / "munkitools_launchd-3.0.3265.pkg"
    url = _package(site, munki.read_bytes(), team_id="JME5BW3F3R")
    assert run_sandbox(sandbox, url) == 1
    assert result(sandbox)["steps"][0]["reason"].endswith("found no signature")
