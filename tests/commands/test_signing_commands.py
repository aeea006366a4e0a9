"""keygen, sign, and --public-key on validate and plan: real files, the real minisign when installed."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bootstrapper.cli import main
from bootstrapper.commands import keygen
from bootstrapper.manifest import signing
from bootstrapper.manifest.signature import parse_public_key, verify
from tests.support.site import Site, serve

DATA = Path(__file__).parent.parent / "data" / "minisign"
MINISIGN = shutil.which("minisign")
needs_minisign = pytest.mark.skipif(MINISIGN is None, reason="the minisign program is not installed")


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BOOTSTRAPPER_MANIFEST_PUBLIC_KEYS", raising=False)
    shutil.copy(DATA / "ours.yaml", tmp_path / "m.yaml")
    return tmp_path


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from serve(tmp_path / "site")


def key_line(pub: Path) -> str:
    return pub.read_text().splitlines()[1]


def one_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


# --- keygen -------------------------------------------------------------------------------------


def test_keygen_writes_a_pair_and_refuses_to_overwrite_it(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keygen", "--no-password", "-p", "k.pub", "-s", "k.key"]) == 0
    out = capsys.readouterr().out
    pub, sec = folder / "k.pub", folder / "k.key"
    assert stat.S_IMODE(sec.stat().st_mode) == 0o600
    assert key_line(pub) in out
    assert signing.public_key_text(sec.read_text()) == pub.read_text()
    before = sec.read_text()
    assert main(["keygen", "--no-password", "-p", "k.pub", "-s", "k.key"]) == 2
    assert "k.pub: already exists; pass --force" in one_error(capsys.readouterr().err)
    assert sec.read_text() == before
    assert main(["keygen", "--no-password", "-p", "k.pub", "-s", "k.key", "--force"]) == 0
    assert sec.read_text() != before


def test_keygen_with_a_password_file_encrypts_the_key(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # minisign's real cost is 1 GiB of scrypt; the format is the same at the cheap setting.
    monkeypatch.setattr(keygen, "KDF_LIMITS", (signing.OPSLIMIT_INTERACTIVE, signing.MEMLIMIT_INTERACTIVE))
    (folder / "pw").write_text("correct horse\n")
    assert main(["keygen", "--password-file", "pw"]) == 0
    sec = (folder / "minisign.key").read_text()
    assert signing.is_encrypted(sec)
    assert signing.public_key_text(sec, "correct horse") == (folder / "minisign.pub").read_text()
    capsys.readouterr()
    expires = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert main(["sign", "m.yaml", "--password-file", "pw", "--serial", "9", "--expires", expires]) == 0
    (folder / "pw").write_text("wrong\n")
    assert main(["sign", "m.yaml", "--password-file", "pw"]) == 2
    assert "wrong password" in one_error(capsys.readouterr().err)


def test_keygen_without_a_terminal_asks_for_a_password_file(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # pytest's stdin is not a terminal, like a CI job's
    assert main(["keygen"]) == 2
    assert "--password-file" in one_error(capsys.readouterr().err)
    assert not (folder / "minisign.key").exists()


# --- sign ---------------------------------------------------------------------------------------


def test_sign_writes_a_minisig_that_validate_accepts(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keygen", "-W"]) == 0
    assert main(["sign", "m.yaml", "--serial", "12", "--expires", "2031-02-03"]) == 0
    sig = (folder / "m.yaml.minisig").read_text()
    assert sig.splitlines()[2] == "trusted comment: serial=12 expires=2031-02-03T00:00:00Z"
    key = key_line(folder / "minisign.pub")
    capsys.readouterr()
    assert main(["validate", "--public-key", key, "m.yaml"]) == 0
    out = capsys.readouterr().out
    assert "signed by key" in out and "serial 12" in out
    got = verify((folder / "m.yaml").read_bytes(), sig, [parse_public_key(key)], now=datetime.now(UTC))
    assert got.serial == 12


@needs_minisign
def test_keygen_and_sign_round_trip_through_minisign(folder: Path) -> None:
    assert main(["keygen", "--no-password"]) == 0
    assert main(["sign", "m.yaml", "--serial", "3"]) == 0
    done = subprocess.run(
        [str(MINISIGN), "-V", "-p", "minisign.pub", "-m", "m.yaml"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "Trusted comment: serial=3" in done.stdout


def test_sign_refuses_bad_input_in_one_line(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen", "-W"]) == 0
    capsys.readouterr()
    assert main(["sign", "m.yaml", "--expires", "2020-01-01"]) == 2
    assert "already past" in one_error(capsys.readouterr().err)
    assert main(["sign", "m.yaml", "--expires", "next week"]) == 2
    assert "YYYY-MM-DDTHH:MM:SSZ" in one_error(capsys.readouterr().err)
    assert main(["sign", "m.yaml", "-s", "nothing.key"]) == 2
    assert "nothing.key: cannot read it" in one_error(capsys.readouterr().err)
    (folder / "bad.yaml").write_text("format: 1\nsetupassistant: 3\n")
    assert main(["sign", "bad.yaml"]) == 2
    assert not (folder / "bad.yaml.minisig").exists()
    assert not (folder / "m.yaml.minisig").exists()


# --- validate and plan --------------------------------------------------------------------------


def test_validate_without_a_key_notes_the_manifest_is_unsigned(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "m.yaml"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("note: m.yaml: unsigned")
    assert out[-1] == "m.yaml: valid (1 item, 0 warnings)"


def test_validate_refuses_what_the_key_did_not_sign(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ours = key_line(DATA / "ours.pub")
    assert main(["validate", "--public-key", ours, "m.yaml"]) == 2
    out = capsys.readouterr().out
    assert "m.yaml.minisig: signature missing" in out
    shutil.copy(DATA / "ours.yaml.minisig", folder / "m.yaml.minisig")
    assert main(["validate", "--public-key", ours, "-f", "json", "m.yaml"]) == 0
    doc = json.loads(capsys.readouterr().out)["manifests"][0]
    assert doc["signature"] == {"key_id": "CB505562F96391B0", "serial": 5, "expires": "2030-01-01T00:00:00Z"}
    with (folder / "m.yaml").open("ab") as fh:
        fh.write(b" ")
    assert main(["validate", "--public-key", ours, "m.yaml"]) == 2
    assert "bad signature from key CB505562F96391B0" in capsys.readouterr().out
    assert main(["validate", "--public-key", key_line(DATA / "minisign.pub"), "m.yaml"]) == 2
    assert "signed by key CB505562F96391B0, this Mac trusts" in capsys.readouterr().out


def test_a_malformed_public_key_is_one_line(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--public-key", "RWQnotakey", "m.yaml"]) == 2
    assert "public key 'RWQnotakey': malformed" in one_error(capsys.readouterr().err)


def test_validate_fetches_the_signature_minisign_made_beside_the_url(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    """The committed vector, made by the real minisign, served from a loopback web server."""
    for name in ("manifest.yaml", "manifest.yaml.minisig"):
        site.add(name, (DATA / name).read_bytes())
    key = key_line(DATA / "minisign.pub")
    url = f"{site.base}/manifest.yaml"
    assert main(["validate", "--allow-http", "--public-key", key, url]) == 0
    assert "signed by key AAE13D5597FDBA5C (serial 3" in capsys.readouterr().out
    (site.root / "manifest.yaml.minisig").unlink()
    assert main(["validate", "--allow-http", "--public-key", key, url]) == 2
    assert f"{url}.minisig: signature missing" in capsys.readouterr().out


@needs_minisign
def test_a_manifest_signed_by_the_minisign_program_over_http_plans(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    site.add("m.yaml", (DATA / "manifest.yaml").read_bytes())
    done = subprocess.run(
        [str(MINISIGN), "-S", "-W", "-s", str(DATA / "minisign.key"), "-m", "m.yaml", "-t", "serial=8"],
        cwd=site.root,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    monkeypatch.setenv("BOOTSTRAPPER_MANIFEST_PUBLIC_KEYS", key_line(DATA / "minisign.pub"))
    monkeypatch.setenv("BOOTSTRAPPER_MANIFEST_MIN_SERIAL", "8")
    assert main(["plan", "--allow-http", f"{site.base}/m.yaml"]) == 0
    assert "Configure this Mac" in capsys.readouterr().out
    monkeypatch.setenv("BOOTSTRAPPER_MANIFEST_MIN_SERIAL", "9")
    assert main(["plan", "--allow-http", f"{site.base}/m.yaml"]) == 2
    assert "serial 8 is below manifest_min_serial 9" in one_error(capsys.readouterr().err)


def test_a_signed_url_keeps_its_query_for_the_signature() -> None:
    from bootstrapper.engine.source import signature_url

    assert signature_url("https://h/b/m.yaml?X-Sig=abc") == "https://h/b/m.yaml.minisig?X-Sig=abc"
    assert signature_url("https://h/m.yaml") == "https://h/m.yaml.minisig"
